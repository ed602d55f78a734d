"""Run files: the streaming writer (:class:`Recorder`) and the reader (:func:`open_run`)."""

from neurosleep.io.layout import FORMAT, FORMAT_VERSION
from neurosleep.io.recorder import Recorder
from neurosleep.io.runfile import RunFile, open_run

__all__ = ["FORMAT", "FORMAT_VERSION", "Recorder", "RunFile", "open_run"]
