"""Importing a library without the optional packages it would only probe for, and without the
garbage collector walking it.

Some libraries import every optional package they could support as soon as they load: pint's
``compat`` module imports dask and scipy (≈0.2 s of a run's start), numba's linear-algebra
support imports ``scipy.linalg`` the first time it prepares its CPU target (≈0.3 s). neurosleep
uses neither feature (pint sees only unit names and numbers; the torch engine's kernel calls no
BLAS), so :func:`hidden` lets such an import see those packages as absent — the library's own
"not installed" path — and makes them importable again afterwards. A package already imported
stays visible: hiding it would only lose the feature, not the time.

A full collection walks every object the process holds. Importing torch and numba builds about
170 000, and the collector ran four full collections while they loaded in a split MNIST run
(0.27 s of processor time, the last over everything torch had built, while numba loaded).
:func:`uncollected` imports with the collector off and then freezes what the import built
(``gc.freeze``: later collections skip it); an import builds modules, functions and classes
that live as long as the process, not garbage.

Examples
--------
>>> import sys
>>> with hidden("a_package_nobody_has"):
...     sys.modules["a_package_nobody_has"] is None
True
>>> "a_package_nobody_has" in sys.modules
False
>>> import gc
>>> with uncollected("a_package_nobody_has"):
...     gc.isenabled()
False
>>> gc.isenabled(), gc.get_freeze_count() > 0
(True, True)
>>> gc.unfreeze()
>>> with uncollected("sys"):  # imported already: nothing changes
...     gc.isenabled()
True
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hidden(*packages: str) -> Iterator[None]:
    """Inside the ``with`` block, importing any of ``packages`` (not yet imported) raises
    ``ImportError`` and ``importlib.util.find_spec`` finds none of them."""
    absent = [name for name in packages if name not in sys.modules]
    for name in absent:
        sys.modules[name] = None  # the import system's "known missing" marker
    try:
        yield
    finally:
        for name in absent:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


@contextmanager
def uncollected(module: str) -> Iterator[None]:
    """For the first import of ``module``, a large library (torch, numba), whose objects stay
    as long as the process: inside the ``with`` block the garbage collector is off; at its end
    every object the process holds is frozen (``gc.freeze``) and the collector on again, if it
    was. Nothing changes where ``module`` is imported already."""
    if module in sys.modules:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def import_numba():
    """numba, its CPU target's implementations loaded with scipy hidden: numba imports scipy to
    check its version and, loading its linear-algebra implementations on the first compilation
    or cache load, to find a BLAS (≈0.3 s); neurosleep's kernels call no BLAS. Imported
    :func:`uncollected`."""
    with hidden("scipy"), uncollected("numba"):
        import numba
        import numba.np.arraymath  # noqa: F401  (what the first compilation would import)
    return numba


__all__ = ["hidden", "import_numba", "uncollected"]
