"""Forecasts of license rows (R36), kept for the day.

A forecast on day T rests on the license's daily usage before T -- which no
longer changes once T has come -- and on today's used units, its units and
expiry. So a forecast made today stays valid while those three are
unchanged: after a command changed a few licenses, a list of thousands
makes only theirs again (the Theil–Sen fit is about a millisecond each).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import orjson

from .domain.forecast import WINDOW_DAYS
from .domain.forecast import forecast as compute_forecast
from .domain.ids import PublicId
from .projections.tables import ViewStore, row_expires
from .projections.views import Forecast

log = logging.getLogger("esmc_licensing")

#: changes when the forecast's method does: forecasts kept by an older one are made again
ALGORITHM = "theil-sen-90/14"


class Forecasts:
    """Forecasts made today, by license, with what they were made from."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: dict[str, tuple[str, Forecast]] = {}
        self._lock = threading.Lock()

    def get(self, public_id: str, key: str) -> Forecast | None:
        found = self._items.get(public_id)
        return found[1] if found is not None and found[0] == key else None

    def put(self, public_id: str, key: str, made: Forecast) -> None:
        with self._lock:
            if len(self._items) >= self._size:
                self._items.clear()
            self._items[public_id] = (key, made)

    def of(
        self, views: ViewStore, rows: Iterable[tuple[str, Mapping[str, Any]]], today: date
    ) -> dict[str, Forecast]:
        """The forecasts of these license rows today: kept ones (here, else in the
        views' cache) where still valid, the others made from the daily usage
        view in one read, and kept."""
        out: dict[str, Forecast] = {}
        missing: list[tuple[str, str, Mapping[str, Any]]] = []
        day = today.isoformat()
        for pid, v in rows:
            key = f"{ALGORITHM}|{day}|{v['used_units']}|{v['units']}|{v['expires']}"
            made = self.get(pid, key)
            if made is None:
                missing.append((pid, key, v))
            else:
                out[pid] = made
        if not missing:
            return out
        kept = views.cached_forecasts([m[0] for m in missing])
        to_make = []
        for pid, key, v in missing:
            found = kept.get(pid)
            if found is not None and found[0] == key:
                made = _decode(found[1])
                self.put(pid, key, made)
                out[pid] = made
            else:
                to_make.append((pid, key, v))
        if not to_make:
            return out
        since = today.toordinal() - WINDOW_DAYS + 1
        usage = views.usage_rows([m[0] for m in to_make], since)
        made_rows = []
        for pid, key, v in to_make:
            expires = row_expires(v)
            trend = compute_forecast(
                usage.get(pid, []),
                today,
                units=v["units"],
                used_units=v["used_units"],
                expires=expires,
            )
            made = Forecast(
                public_id=PublicId(pid),
                units=v["units"],
                used_units=v["used_units"],
                trend_per_day=trend.trend_per_day,
                depletion=trend.depletion,
                expires=expires,
                based_on_days=trend.based_on_days,
                enough_data=trend.enough_data,
            )
            self.put(pid, key, made)
            out[pid] = made
            made_rows.append((pid, key, _encode(made)))
        try:
            views.cache_forecasts(made_rows)
        except Exception as e:  # a cache: never fail a query on it
            log.warning("could not keep forecasts: %s", type(e).__name__)
        return out


def _encode(f: Forecast) -> str:
    return orjson.dumps(
        [
            f.trend_per_day,
            f.depletion and f.depletion.isoformat(),
            f.based_on_days,
            f.enough_data,
            f.units,
            f.used_units,
            f.expires and f.expires.isoformat(),
            str(f.public_id),
        ]
    ).decode()


def _decode(text: str) -> Forecast:
    trend, depletion, based_on, enough, units, used, expires, pid = orjson.loads(text)
    return Forecast(
        public_id=PublicId(pid),
        units=units,
        used_units=used,
        trend_per_day=trend,
        depletion=None if depletion is None else date.fromisoformat(depletion),
        expires=None if expires is None else date.fromisoformat(expires),
        based_on_days=based_on,
        enough_data=enough,
    )


__all__ = ["Forecasts"]
