"""An immutable set whose changed copies share what did not change (R20, R5).

A state is never changed, so each seat taken or license joining a pool makes
a new set. A ``frozenset`` is copied whole for that: a license's 10,000th
seat cost 250 µs, and a pool's 10,000th license as much, in the decision and
again in the views -- so one import of 10,000 licenses into one pool, or
10,000 activations on one license, cost time quadratic in their number. A
persistent set (a hash array mapped trie, ``immutables.Map``) shares all but
a path with the set it was made from: about a microsecond whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Generic, Self, TypeVar

import immutables

T = TypeVar("T")


class PersistentSet(Generic[T]):
    """An immutable set; ``with_item``/``without_item`` make new ones. It equals a
    ``set`` or ``frozenset`` of the same items."""

    __slots__ = ("_map",)

    _map: immutables.Map[T, None]

    def __init__(self, items: Iterable[T] = ()) -> None:
        self._map = immutables.Map(dict.fromkeys(items))

    @classmethod
    def _of(cls, mapping: immutables.Map[T, None]) -> Self:
        new = cls.__new__(cls)
        new._map = mapping
        return new

    def with_item(self, item: T) -> Self:
        return self if item in self._map else self._of(self._map.set(item, None))

    def without_item(self, item: T) -> Self:
        return self._of(self._map.delete(item)) if item in self._map else self

    def __or__(self, other: Iterable[T]) -> Self:
        """The union (of a set of the same kind, cheap when either is empty or they
        are the same set)."""
        if other is self or (isinstance(other, PersistentSet) and not other._map):
            return self
        if not self._map and isinstance(other, type(self)):
            return other
        m = self._map.mutate()
        for item in other:
            m.set(item, None)
        return self._of(m.finish())

    def __contains__(self, item: object) -> bool:
        return item in self._map

    def __len__(self) -> int:
        return len(self._map)

    def __iter__(self) -> Iterator[T]:
        return iter(self._map)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PersistentSet):
            return self._map == other._map
        if isinstance(other, (set, frozenset)):
            return len(other) == len(self._map) and all(s in self._map for s in other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._map)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({sorted(self._map, key=str)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (tuple(self._map),)


__all__ = ["PersistentSet"]
