"""Name → implementation registries for engines, experiments, sleep algorithms and datasets.

A registry holds classes or functions, never live simulation objects. Unknown names raise
with the list of known ones.

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

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping that refuses unknown and duplicate names."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.what} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
