"""R8: status is a pure function of a license's facts and today's date."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esmc_licensing import Policy, StatusLevel, StatusReason, license_status
from esmc_licensing.domain.status import Status

TODAY = date(2026, 1, 1)
DEFAULT = Policy()
R = StatusReason
WORST_FIRST = [
    StatusLevel.SUSPENDED,
    StatusLevel.EXPIRED,
    StatusLevel.ERROR,
    StatusLevel.WARNING,
    StatusLevel.OK,
]
REASON_LEVEL = {
    R.SUSPENDED: StatusLevel.SUSPENDED,
    R.EXPIRED: StatusLevel.EXPIRED,
    R.NOT_REGISTERED: StatusLevel.ERROR,
    R.OBSOLETE: StatusLevel.ERROR,
    R.OVERUSED: StatusLevel.ERROR,
    R.EXPIRING: StatusLevel.WARNING,
    R.AT_RISK_OF_OVERUSE: StatusLevel.WARNING,
}


def status(
    *,
    units: int = 10,
    used: int = 0,
    days_left: int | None = 365,
    policy: Policy = DEFAULT,
    **flags: bool,
) -> Status:
    expires = None if days_left is None else TODAY + timedelta(days=days_left)
    return license_status(
        units=units, used_units=used, expires=expires, today=TODAY, policy=policy, **flags
    )


policies = st.builds(
    Policy,
    expiring_days=st.integers(min_value=0, max_value=120),
    at_risk_ratio=st.sampled_from([0.5, 0.75, 0.8, 0.9, 0.95, 0.99, 1.0]),
)

facts = st.fixed_dictionaries(
    {
        "units": st.integers(min_value=1, max_value=10_000),
        "used_units": st.integers(min_value=0, max_value=25_000),
        "expires": st.none() | st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 31)),
        "today": st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
        "policy": policies,
        "suspended": st.booleans(),
        "registered": st.booleans(),
        "registration_url": st.none() | st.just("https://register.example/3AB"),
        "obsolete": st.booleans(),
    }
)


def expected_reasons(f: dict[str, object]) -> set[StatusReason]:
    """An independent reading of R8."""
    units, used, policy = f["units"], f["used_units"], f["policy"]
    assert isinstance(units, int) and isinstance(used, int) and isinstance(policy, Policy)
    out = set()
    if f["suspended"]:
        out.add(R.SUSPENDED)
    expires, today = f["expires"], f["today"]
    if isinstance(expires, date) and isinstance(today, date):
        days_left = (expires - today).days
        if days_left < 0:
            out.add(R.EXPIRED)
        elif days_left <= policy.expiring_days:
            out.add(R.EXPIRING)
    if not f["registered"]:
        out.add(R.NOT_REGISTERED)
    if f["obsolete"]:
        out.add(R.OBSOLETE)
    if used > units:
        out.add(R.OVERUSED)
    elif Fraction(used, units) > Fraction(str(policy.at_risk_ratio)):
        out.add(R.AT_RISK_OF_OVERUSE)
    return out


@given(f=facts)
def test_r8_status_is_a_pure_function_of_facts_and_today(f: dict[str, object]) -> None:
    first = license_status(**f)  # type: ignore[arg-type]
    assert license_status(**dict(f)) == first  # type: ignore[arg-type]
    reasons = expected_reasons(f)
    assert first.reasons == reasons
    worst = next(
        (lvl for lvl in WORST_FIRST if any(REASON_LEVEL[r] is lvl for r in reasons)),
        StatusLevel.OK,
    )
    assert first.level is worst
    assert first.registration_url == (None if f["registered"] else f["registration_url"])
    assert not {R.OVERUSED, R.AT_RISK_OF_OVERUSE} <= first.reasons
    assert not {R.EXPIRED, R.EXPIRING} <= first.reasons


@given(f=facts)
def test_r8_level_is_the_worst_reason_present(f: dict[str, object]) -> None:
    s = license_status(**f)  # type: ignore[arg-type]
    assert (s.level is StatusLevel.OK) == (not s.reasons)
    for r in s.reasons:
        assert WORST_FIRST.index(s.level) <= WORST_FIRST.index(REASON_LEVEL[r])
        assert r.level is REASON_LEVEL[r]


def test_r8_order_of_levels() -> None:
    everything = status(used=11, days_left=-1, suspended=True, registered=False, obsolete=True)
    assert everything.level is StatusLevel.SUSPENDED
    assert status(used=11, days_left=-1, registered=False).level is StatusLevel.EXPIRED
    assert status(used=11, days_left=3).level is StatusLevel.ERROR
    assert status(used=10, days_left=3).level is StatusLevel.WARNING
    assert status().level is StatusLevel.OK
    assert status().reasons == frozenset()
    assert status().message == "your license is activated successfully"
    assert status(days_left=None).level is StatusLevel.OK  # open-ended subscription


@pytest.mark.parametrize(
    ("days_left", "reasons"),
    [
        (31, set()),
        (30, {R.EXPIRING}),
        (1, {R.EXPIRING}),
        (0, {R.EXPIRING}),  # valid through its expiration date (UTC)
        (-1, {R.EXPIRED}),
        (-400, {R.EXPIRED}),
    ],
)
def test_r8_expiry_boundaries(days_left: int, reasons: set[StatusReason]) -> None:
    assert status(days_left=days_left).reasons == reasons


@pytest.mark.parametrize(
    ("units", "used", "reasons"),
    [
        (10, 9, set()),  # exactly 90 %: not at risk
        (100, 90, set()),
        (100, 91, {R.AT_RISK_OF_OVERUSE}),
        (10, 10, {R.AT_RISK_OF_OVERUSE}),  # 100 % > 90 %, not overused
        (1, 1, {R.AT_RISK_OF_OVERUSE}),
        (1, 0, set()),
        (10, 11, {R.OVERUSED}),  # strictly more than units: overused, not at risk
        (100, 101, {R.OVERUSED}),
        (3, 100, {R.OVERUSED}),
    ],
)
def test_r8_usage_boundaries_with_default_policy(
    units: int, used: int, reasons: set[StatusReason]
) -> None:
    s = status(units=units, used=used)
    assert s.reasons == reasons
    assert s.level is (StatusLevel.OK if not reasons else REASON_LEVEL[next(iter(reasons))])


def test_r8_used_equal_units_is_not_overused() -> None:
    assert R.OVERUSED not in status(units=7, used=7).reasons
    over = status(units=7, used=8)
    assert over.reasons == {R.OVERUSED}
    assert over.level is StatusLevel.ERROR


@pytest.mark.parametrize(
    ("policy", "units", "used", "days_left", "reasons"),
    [
        (Policy(expiring_days=7), 10, 0, 8, set()),
        (Policy(expiring_days=7), 10, 0, 7, {R.EXPIRING}),
        (Policy(expiring_days=0), 10, 0, 1, set()),
        (Policy(expiring_days=0), 10, 0, 0, {R.EXPIRING}),
        (Policy(expiring_days=0), 10, 0, -1, {R.EXPIRED}),
        (Policy(expiring_days=90), 10, 0, 90, {R.EXPIRING}),
        (Policy(expiring_days=90), 10, 0, 91, set()),
        (Policy(at_risk_ratio=0.75), 4, 3, 365, set()),  # exactly 75 %
        (Policy(at_risk_ratio=0.75), 100, 76, 365, {R.AT_RISK_OF_OVERUSE}),
        (Policy(at_risk_ratio=0.5), 10, 5, 365, set()),
        (Policy(at_risk_ratio=0.5), 10, 6, 365, {R.AT_RISK_OF_OVERUSE}),
        (Policy(at_risk_ratio=1.0), 10, 10, 365, set()),  # never at risk, only overused
        (Policy(at_risk_ratio=1.0), 10, 11, 365, {R.OVERUSED}),
        # 0.1 is not exact in binary; the comparison must still be exact
        (Policy(at_risk_ratio=0.1), 10, 1, 365, set()),
        (Policy(at_risk_ratio=0.1), 100, 11, 365, {R.AT_RISK_OF_OVERUSE}),
        (Policy(at_risk_ratio=0.3), 10, 3, 365, set()),
    ],
)
def test_r8_policy_thresholds_other_than_defaults(
    policy: Policy, units: int, used: int, days_left: int, reasons: set[StatusReason]
) -> None:
    assert status(units=units, used=used, days_left=days_left, policy=policy).reasons == reasons


def test_r8_not_registered_carries_the_registration_url() -> None:
    s = status(registered=False, registration_url="https://register.example/X")
    assert s.level is StatusLevel.ERROR
    assert s.reasons == {R.NOT_REGISTERED}
    assert s.registration_url == "https://register.example/X"
    assert status(registration_url="https://register.example/X").registration_url is None


def test_r8_obsolete_is_an_error() -> None:
    assert status(obsolete=True).reasons == {R.OBSOLETE}
    assert status(obsolete=True).level is StatusLevel.ERROR


@given(
    units=st.integers(min_value=1, max_value=10**6),
    extra=st.integers(min_value=1, max_value=10**6),
)
def test_r8_overused_excludes_at_risk(units: int, extra: int) -> None:
    assert status(units=units, used=units + extra).reasons == {R.OVERUSED}
    assert R.OVERUSED not in status(units=units, used=units).reasons


def test_r8_status_moves_with_the_calendar_only() -> None:
    expires = date(2026, 3, 1)
    seen = [
        license_status(units=10, used_units=0, expires=expires, today=d, policy=DEFAULT).reasons
        for d in (date(2026, 1, 29), date(2026, 1, 30), date(2026, 3, 1), date(2026, 3, 2))
    ]
    assert seen == [set(), {R.EXPIRING}, {R.EXPIRING}, {R.EXPIRED}]
