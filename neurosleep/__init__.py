"""neurosleep: sleep-like offline replay in spiking and conventional neural networks.

The Python API (docs/api.md): :func:`run` a protocol, :func:`open` a run file, :func:`compare`
runs; a :class:`Run` gives tidy pandas tables and xarray arrays. :func:`open_run` is the
lower-level reader with numpy arrays (docs/run-file.md).
"""

from neurosleep.api import Run, compare, open, run
from neurosleep.io.runfile import open_run
from neurosleep.version import __version__

__all__ = ["__version__", "Run", "compare", "open", "open_run", "run"]
