"""Forecasts of license rows (R36), kept for the day.

A forecast on day T rests on the license's daily usage before T -- which no
longer changes once T has come -- and on today's used units, its units and
expiry. So a forecast made today stays valid while those three are
unchanged: after a command changed a few licenses, a list of thousands
makes only theirs again (the Theil–Sen fit is about a millisecond each).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from .domain.forecast import WINDOW_DAYS
from .domain.forecast import forecast as compute_forecast
from .domain.ids import PublicId
from .projections.tables import ViewStore, row_expires
from .projections.views import Forecast


class Forecasts:
    """Forecasts made today, by license, with what they were made from."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: dict[str, tuple[tuple[Any, ...], Forecast]] = {}
        self._lock = threading.Lock()

    def get(self, public_id: str, key: tuple[Any, ...]) -> Forecast | None:
        found = self._items.get(public_id)
        return found[1] if found is not None and found[0] == key else None

    def put(self, public_id: str, key: tuple[Any, ...], made: Forecast) -> None:
        with self._lock:
            if len(self._items) >= self._size:
                self._items.clear()
            self._items[public_id] = (key, made)

    def of(
        self, views: ViewStore, rows: Iterable[tuple[str, Mapping[str, Any]]], today: date
    ) -> dict[str, Forecast]:
        """The forecasts of these license rows today: kept ones where still valid,
        the others made from the daily usage view (in one read)."""
        out: dict[str, Forecast] = {}
        missing: list[tuple[str, tuple[Any, ...], Mapping[str, Any]]] = []
        cache = self
        for pid, v in rows:
            key = (today, v["used_units"], v["units"], v["expires"])
            made = cache.get(pid, key)
            if made is None:
                missing.append((pid, key, v))
            else:
                out[pid] = made
        if not missing:
            return out
        since = today.toordinal() - WINDOW_DAYS + 1
        usage = views.usage_rows([m[0] for m in missing], since)
        for pid, key, v in missing:
            trend = compute_forecast(
                usage.get(pid, []),
                today,
                units=v["units"],
                used_units=v["used_units"],
                expires=row_expires(v),
            )
            made = Forecast(
                public_id=PublicId(pid),
                units=v["units"],
                used_units=v["used_units"],
                trend_per_day=trend.trend_per_day,
                depletion=trend.depletion,
                expires=row_expires(v),
                based_on_days=trend.based_on_days,
                enough_data=trend.enough_data,
            )
            cache.put(pid, key, made)
            out[pid] = made
        return out


__all__ = ["Forecasts"]
