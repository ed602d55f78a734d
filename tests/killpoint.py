"""SIGKILL a process at a chosen point of the code: the N-th call of a function, before or after
it runs. Used to kill a study's driver or one of its Dask workers at exact moments.

Armed from the environment, ``NEUROSLEEP_KILLPOINT=MODULE:QUALNAME:N:before|after:MARKER``, when
this module is imported: as the program (``python -m tests.killpoint study run ...`` runs the
CLI in a process that kills itself), or as a Dask worker preload
(``DASK_DISTRIBUTED__WORKER__PRELOAD='["tests.killpoint"]'``). Only one process ever fires:
the first to create the file ``MARKER`` (which then holds its pid); the others run on.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

ENV = "NEUROSLEEP_KILLPOINT"


def arm(spec: str) -> None:
    """Wrap the function named by ``spec`` (see the module docstring) with the kill."""
    target, qualname, n, when, marker = spec.split(":")
    owner = importlib.import_module(target)
    *parents, name = qualname.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = 0

    def kill() -> None:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        if when == "before" and calls == int(n):
            kill()
        result = original(*args, **kwargs)
        if when == "after" and calls == int(n):
            kill()
        return result

    setattr(owner, name, wrapper)


if os.environ.get(ENV):
    arm(os.environ[ENV])

if __name__ == "__main__":
    from neurosleep.cli import main

    sys.exit(main(sys.argv[1:]))
