"""R36: depletion forecasts from the recorded usage history (Theil–Sen).

On synthetic histories with a known linear trend, noise and outliers the
forecast's depletion date is within ``2 days + 10 % of the horizon`` of the
true one; constant usage never depletes; histories shorter than
``MIN_HISTORY_DAYS`` say "not enough data". Through the application: the
forecast of a license from its usage reports, the forecast column of
``licenses`` and the ``depleting_within`` filter, on every store.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmc_licensing import InvalidInput, LicenseFilter, LicenseManagement, ManualClock, NotFound
from esmc_licensing.adapters.memory import InMemoryActivationServer
from esmc_licensing.domain.forecast import (
    MIN_HISTORY_DAYS,
    WINDOW_DAYS,
    daily_series,
    forecast,
    theil_sen,
)

from .conftest import PRODUCT, AppFactory

TODAY = date(2026, 6, 1)


def _pairwise_theil_sen(ys: list[int]) -> tuple[float, float]:
    """The estimator as defined: the median of the slopes of every pair of days
    (each ``rise * (1.0 / distance)``), then the median intercept."""

    def median(values: list[float]) -> float:
        values = sorted(values)
        half = len(values) // 2
        return values[half] if len(values) % 2 else (values[half - 1] + values[half]) / 2

    slopes = [
        (ys[j] - ys[i]) * (1.0 / (j - i)) for i in range(len(ys)) for j in range(i + 1, len(ys))
    ]
    slope = median(slopes)
    return slope, median([y - slope * x for x, y in enumerate(ys)])


@settings(max_examples=300, deadline=None)
@given(
    runs=st.lists(
        st.tuples(st.integers(1, 40), st.integers(0, 60)), min_size=1, max_size=40
    ).map(lambda rs: [v for length, v in rs for _ in range(length)][:WINDOW_DAYS]),
)
def test_r36_theil_sen_is_the_median_of_every_pairs_slope(runs: list[int]) -> None:
    """R36: the trend is exactly (bit for bit) the Theil–Sen line of the
    definition, whether the series is a few runs of equal usage (counted by
    runs) or changes most days (every pair listed)."""
    if len(runs) >= 2:
        assert theil_sen(runs) == _pairwise_theil_sen(runs)


def _history(values: list[int]) -> list[tuple[int, int]]:
    start = TODAY.toordinal() - len(values) + 1
    return [(start + i, v) for i, v in enumerate(values)]


@settings(max_examples=200, deadline=None)
@given(
    slope=st.floats(0.5, 3.0),
    start=st.integers(0, 200),
    horizon=st.integers(5, 120),
    noise=st.floats(0.0, 2.0),
    outliers=st.floats(0.0, 0.1),
    seed=st.integers(0, 2**32 - 1),
)
def test_r36_depletion_of_a_noisy_linear_trend_within_tolerance(
    slope: float, start: int, horizon: int, noise: float, outliers: float, seed: int
) -> None:
    """R36: a linear trend with Gaussian noise and up to 10 % wild outliers gives
    the true depletion date within 2 days + 10 % of the horizon."""
    rng = random.Random(seed)
    n = WINDOW_DAYS
    units = math.ceil(start + slope * (n - 1 + horizon))
    values = []
    for x in range(n):
        y = start + slope * x + rng.gauss(0, noise)
        if rng.random() < outliers:
            y = rng.uniform(0, 2 * units)  # a report counting a fleet twice, or none
        values.append(max(0, round(y)))
    true_day = TODAY + timedelta(days=math.ceil((units - start) / slope) - (n - 1))
    used = round(start + slope * (n - 1))
    made = forecast(_history(values), TODAY, units=units, used_units=used, expires=None)
    assert made.enough_data and made.based_on_days == n
    assert made.depletion is not None
    tolerance = 2 + 0.1 * (true_day - TODAY).days
    assert abs((made.depletion - true_day).days) <= tolerance
    assert made.trend_per_day == pytest.approx(slope, rel=0.25, abs=0.1)


@given(level=st.integers(0, 50), days=st.integers(MIN_HISTORY_DAYS, 400))
def test_r36_constant_usage_never_depletes(level: int, days: int) -> None:
    """R36: usage that does not move gives a flat trend and no depletion."""
    made = forecast(
        [(TODAY.toordinal() - days + 1, level)],
        TODAY,
        units=level + 1,
        used_units=level,
        expires=None,
    )
    assert made.enough_data
    assert made.trend_per_day == 0.0
    assert made.depletion is None
    assert made.based_on_days == min(days, WINDOW_DAYS)


@given(days=st.integers(1, MIN_HISTORY_DAYS - 1), slope=st.integers(1, 5))
def test_r36_short_history_is_not_enough_data(days: int, slope: int) -> None:
    """R36: below the minimum history the forecast says so instead of guessing."""
    made = forecast(
        _history([slope * x for x in range(days)]),
        TODAY,
        units=1000,
        used_units=0,
        expires=None,
    )
    assert not made.enough_data
    assert made.trend_per_day is None and made.depletion is None
    assert made.based_on_days == days


def test_r36_falling_usage_and_late_depletion_do_not_deplete() -> None:
    """R36: a falling trend never depletes; a trend reaching the units after the
    license expires does not deplete it either; a license at its units is
    depleted today."""
    falling = _history([100 - x for x in range(60)])
    assert forecast(falling, TODAY, units=200, used_units=41, expires=None).depletion is None
    rising = _history(list(range(60)))  # one unit a day, 59 today
    assert forecast(rising, TODAY, units=100, used_units=59, expires=None).depletion == (
        TODAY + timedelta(days=41)
    )
    late = forecast(rising, TODAY, units=100, used_units=59, expires=TODAY + timedelta(days=40))
    assert late.depletion is None and late.trend_per_day == pytest.approx(1.0)
    full = forecast(rising, TODAY, units=59, used_units=59, expires=None)
    assert full.depletion == TODAY


def test_r36_daily_series_carries_the_last_report_forward() -> None:
    """R36: days without a report keep the last value (the sync records changes only)."""
    today = TODAY.toordinal()
    assert daily_series([(today - 4, 3), (today - 1, 5)], today) == [3, 3, 3, 5, 5]
    assert daily_series([(today - 200, 7)], today) == [7] * WINDOW_DAYS


# -- through the application, on every store ------------------------------------------------


def _grow(
    app: LicenseManagement,
    vendor: InMemoryActivationServer,
    clock: ManualClock,
    pid: str,
    days: int,
    per_day: int,
    start: int = 0,
) -> None:
    for day in range(days):
        vendor.report_usage(pid, start + per_day * day)
        app.synchronize()
        clock.advance(timedelta(days=1))


def test_r36_forecast_from_usage_reports(
    make_app: AppFactory, vendor: InMemoryActivationServer, clock: ManualClock
) -> None:
    """R36: the forecast of a license from its daily usage reports, beside its
    expiration, in ``forecast()``, in the ``licenses`` column and through the
    ``depleting_within`` filter, and as of a past moment the one made then
    (R30); invisible licenses are not found (R14)."""
    app = make_app()
    admin = app.administrator
    expires = clock.now().date() + timedelta(days=365)
    for pid, owner in (("GRO-000-001", "Grows"), ("FLA-000-001", "Flat")):
        app.add_license_key(
            admin,
            vendor.issue(
                public_id=pid,
                product=PRODUCT,
                units=100,
                expires=expires,
                owner=owner,
            ),
        )
    short = app.forecast(admin, "GRO-000-001")
    assert not short.enough_data and str(short) == "not enough data"
    vendor.report_usage("FLA-000-001", 10)
    _grow(app, vendor, clock, "GRO-000-001", 30, 2)  # 0, 2, …, 58; today 30 days on
    made = app.forecast(admin, "GRO-000-001")
    assert made.enough_data and made.based_on_days == 31
    assert made.trend_per_day == pytest.approx(2.0, abs=0.1)
    assert made.used_units == 58 and made.expires == expires
    # the line reaches 100 units 21 days after the last report (58 + 2 × 21)
    assert made.depletion == clock.now().date() + timedelta(days=20)
    flat = app.forecast(admin, "FLA-000-001")
    assert flat.enough_data and flat.depletion is None and str(flat) == "no depletion"
    views = {str(v.public_id): v for v in app.licenses(admin)}
    assert views["GRO-000-001"].forecast == made
    assert views["FLA-000-001"].forecast == flat
    soon = app.licenses(admin, LicenseFilter(depleting_within=30))
    assert [str(v.public_id) for v in soon] == ["GRO-000-001"]
    assert app.licenses(admin, LicenseFilter(depleting_within=10)) == []
    # reopened (another process): the same forecasts from the views
    assert make_app().forecast(admin, "GRO-000-001") == made
    # as of today, later (R30): the forecast that was made today
    then = clock.now()
    clock.advance(timedelta(hours=1))
    _grow(app, vendor, clock, "GRO-000-001", 5, 5, start=60)
    assert app.forecast(admin, "GRO-000-001") != made
    assert app.license(admin, "GRO-000-001", as_of=then).forecast == made
    assert app.forecast(admin, "GRO-000-001", as_of=then) == made
    assert [v.forecast for v in app.licenses(admin, as_of=then)] == [flat, made]
    branch = app.create_group(admin, "Branch")
    bob = app.create_user(admin, "bob", branch)
    with pytest.raises(NotFound):
        app.forecast(bob, "GRO-000-001")


def test_r36_depleting_within_takes_days() -> None:
    """R36: the filter takes a whole number of days ≥ 0; anything else is refused."""
    assert LicenseFilter(depleting_within=0).depleting_within == 0
    for bad in (-1, 1.5, "soon", True):
        with pytest.raises(InvalidInput):
            LicenseFilter(depleting_within=bad)  # type: ignore[arg-type]


def test_r36_prepared_forecasts_are_read_not_made_by_the_first_query_of_the_day(
    make_app: AppFactory,
    store_env: dict[str, str],
    vendor: InMemoryActivationServer,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R36: ``prepare_forecasts`` (the daily job) makes today's forecast of every
    license and keeps it; the first ``licenses`` of the day in another
    application then fits no trend, and shows the same forecasts."""
    app = make_app()
    admin = app.administrator
    expires = clock.now().date() + timedelta(days=365)
    for pid in ("GRO-000-001", "GRO-000-002"):
        app.add_license_key(admin, vendor.issue(
            public_id=pid, product=PRODUCT, units=100, expires=expires, owner=pid,
        ))
    for day in range(20):
        vendor.report_usage("GRO-000-001", 2 * day)
        vendor.report_usage("GRO-000-002", 3 * day + day % 2)
        app.synchronize()
        clock.advance(timedelta(days=1))
    assert app.prepare_forecasts() == 2
    fitted: list[int] = []
    from esmc_licensing import forecasting

    made = forecasting.compute_forecast
    monkeypatch.setattr(
        forecasting, "compute_forecast", lambda *a, **k: fitted.append(1) or made(*a, **k)
    )
    # another application the same day (in memory, where each application has
    # views of its own, the same one)
    persistent = not store_env["PERSISTENCE_MODULE"].endswith("popo")
    views = (make_app() if persistent else app).licenses(admin)
    assert fitted == []
    assert [v.forecast for v in views] == [app.forecast(admin, str(v.public_id)) for v in views]
    assert all(v.forecast.enough_data for v in views)
    clock.advance(timedelta(days=1))  # a new day: nothing prepared yet, so made
    (make_app() if persistent else app).licenses(admin)
    assert len(fitted) == 2
