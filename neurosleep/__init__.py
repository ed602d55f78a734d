"""neurosleep: sleep-like offline replay in spiking and conventional neural networks."""

__version__ = "0.1.0"

from neurosleep.io.runfile import open_run  # noqa: E402

__all__ = ["__version__", "open_run"]
