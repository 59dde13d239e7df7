"""The seats a license holds (R20), as a persistent set (see :mod:`.persistent_set`):
an activation on a license costs the same whatever seats it already holds."""

from __future__ import annotations

from .persistent_set import PersistentSet

#: (computer id as str, product)
Seat = tuple[str, str]


class SeatSet(PersistentSet[Seat]):
    """A license's seats; ``with_seat``/``without_seat`` make new ones."""

    __slots__ = ()

    def with_seat(self, seat: Seat) -> SeatSet:
        return self.with_item(seat)

    def without_seat(self, seat: Seat) -> SeatSet:
        return self.without_item(seat)


EMPTY = SeatSet()

__all__ = ["EMPTY", "Seat", "SeatSet"]
