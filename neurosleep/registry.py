"""Name → implementation registries for engines, experiments, sleep algorithms and datasets.

A registry holds classes or functions, never live simulation objects. Unknown names raise
with the list of known ones. A registry may name the package whose modules register into it
(``discover=``): on its first lookup it imports every module of that package, so a new
algorithm is one new file, and a lower layer can hold the registry that a higher one fills
without importing it (as entry points do; docs/architecture.md).

Examples
--------
>>> reg = Registry("engine")
>>> @reg.register("toy")
... class Toy: ...
>>> reg.get("toy") is Toy
True
>>> reg.get("tpyo")
Traceback (most recent call last):
...
KeyError: "unknown engine 'tpyo'; known: toy"
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping that refuses unknown and duplicate names."""

    def __init__(self, what: str, discover: str | None = None) -> None:
        self.what = what
        self._items: dict[str, T] = {}
        self._discover = discover

    def _load(self) -> None:
        """Import the modules of the ``discover`` package once (each registers its entries)."""
        if self._discover is None:
            return
        name, self._discover = self._discover, None
        package = importlib.import_module(name)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{name}.{info.name}")

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.what} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(sorted(self._items))
