"""R36: when a license's used units will reach its units, from its usage history.

The history is the license's used units at the end of each day (the day's
last recorded value, carried forward over days nothing changed: the daily
sync records usage only when it changes). The trend is the Theil–Sen
estimate over the last ``WINDOW_DAYS`` days of that series: the median of
the slopes between every pair of days, and the median intercept.

Why Theil–Sen: usage series have outliers (a vendor report counting a
re-imaged fleet twice, a one-day spike of trial activations) and steps (a
branch onboarded at once). Least squares lets one bad day tilt the whole
line; Theil–Sen ignores up to about 29 % of arbitrarily bad points, needs no
tuning, and on a clean linear trend gives the same line. Its cost, about
4,000 slopes for 90 days, is paid once per license and day (the answers are
kept).

Below ``MIN_HISTORY_DAYS`` days of history the forecast says "not enough
data" instead of guessing. A flat or falling trend never depletes; a trend
reaching the units only after the license expires does not either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import attrs

#: days of history the trend is computed over
WINDOW_DAYS = 90
#: days of history below which no forecast is made
MIN_HISTORY_DAYS = 14


@attrs.frozen
class Trend:
    """The outcome of a forecast, before it is dressed as a view."""

    trend_per_day: float | None
    depletion: date | None
    based_on_days: int
    enough_data: bool


def daily_series(
    records: Sequence[tuple[int, int]], today: int, window: int = WINDOW_DAYS
) -> list[int]:
    """Used units per day over the window ending ``today`` (date ordinals),
    from ``records`` (day, used units at the end of that day), sorted by day.
    Days before the first record are not part of the history."""
    if not records:
        return []
    start = max(records[0][0], today - window + 1)
    out: list[int] = []
    i, current = 0, records[0][1]
    for day in range(start, today + 1):
        while i < len(records) and records[i][0] <= day:
            current = records[i][1]
            i += 1
        out.append(current)
    return out


def theil_sen(ys: Sequence[int]) -> tuple[float, float]:
    """(slope, intercept) of the Theil–Sen line through (0, ys[0]), (1, ys[1]), …"""
    n = len(ys)
    if n < 2:
        return 0.0, float(ys[0]) if ys else 0.0
    runs = _runs(ys)
    if len(runs) * 3 > n:  # a busy series: every pair's slope, in C-speed comprehensions
        slopes: list[float] = []
        extend = slopes.extend
        for lag in range(1, n):
            inverse = 1.0 / lag
            extend([(b - a) * inverse for a, b in zip(ys, ys[lag:], strict=False)])
        slope = _median(slopes)
    else:
        slope = _run_median(runs, n)
    intercept = _median([y - slope * x for x, y in enumerate(ys)])
    return slope, intercept


def _runs(ys: Sequence[int]) -> list[tuple[int, int, int]]:
    """The series as runs of equal values: (first day, last day, value)."""
    runs: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(ys) + 1):
        if i == len(ys) or ys[i] != ys[start]:
            runs.append((start, i - 1, ys[start]))
            start = i
    return runs


def _run_median(runs: list[tuple[int, int, int]], n: int) -> float:
    """The median of every pair's slope, counted by runs instead of listed.

    Usage is carried forward over the days it did not change, so a series is
    mostly a few runs of equal values. A pair of days in one run (or in two
    runs of the same value) has slope 0; a pair across two runs has slope
    rise / distance, and for each distance the number of such pairs is the
    overlap of the runs shifted by it. So the median is found among a few
    hundred (slope, count) entries rather than ~4,000 slopes -- the same
    value, bit for bit: each slope is computed as ``rise * (1.0 / distance)``
    as the pairwise listing computes it.
    """
    weighted: list[tuple[float, int]] = []
    extend = weighted.extend
    zero = 0
    for r, (s1, e1, v1) in enumerate(runs):
        length = e1 - s1 + 1
        zero += length * (length - 1) // 2
        for s2, e2, v2 in runs[r + 1 :]:
            rise = v2 - v1
            if rise == 0:
                zero += length * (e2 - s2 + 1)
                continue
            # distances lo..hi; the pairs at each: 1, 2, … up to the shorter
            # run's length m, m on the plateau, then down to 1 again
            lo, hi = s2 - e1, e2 - s1
            m = min(length, e2 - s2 + 1)
            top = lo + m - 1  # the plateau's first distance
            end = hi - m + 1  # and its last
            extend([(rise * (1.0 / d), d - lo + 1) for d in range(lo, top)])
            extend([(rise * (1.0 / d), m) for d in range(top, end + 1)])
            extend([(rise * (1.0 / d), hi - d + 1) for d in range(end + 1, hi + 1)])
    if zero:
        weighted.append((0.0, zero))
    weighted.sort()
    total = n * (n - 1) // 2
    half = total // 2
    low = high = 0.0
    seen = 0
    for value, count in weighted:
        if seen <= half - 1 < seen + count:
            low = value
        if seen <= half < seen + count:
            high = value
            break
        seen += count
    return high if total % 2 else (low + high) / 2


def _median(values: list[float]) -> float:
    values.sort()
    m = len(values)
    half = m // 2
    return values[half] if m % 2 else (values[half - 1] + values[half]) / 2


def forecast(
    records: Sequence[tuple[int, int]],
    today: date,
    *,
    units: int,
    used_units: int,
    expires: date | None,
) -> Trend:
    """The depletion forecast of one license on ``today`` (R36)."""
    series = daily_series(records, today.toordinal())
    days = len(series)
    if days < MIN_HISTORY_DAYS:
        return Trend(None, None, days, False)
    if min(series) == max(series):
        slope, intercept = 0.0, float(series[0])
    else:
        slope, intercept = theil_sen(series)
    if used_units >= units:
        depletion: date | None = today  # already there
    elif slope <= 0:
        depletion = None
    else:
        # the first day the line reaches the units, counted from the window's start
        x = (units - intercept) / slope
        ahead = max(0, math.ceil(x) - (days - 1))
        try:
            depletion = date.fromordinal(today.toordinal() + ahead)
        except (OverflowError, ValueError):
            depletion = None  # beyond the calendar: never, in practice
    if depletion is not None and expires is not None and depletion > expires:
        depletion = None
    return Trend(slope, depletion, days, True)


__all__ = ["MIN_HISTORY_DAYS", "WINDOW_DAYS", "Trend", "daily_series", "forecast", "theil_sen"]
