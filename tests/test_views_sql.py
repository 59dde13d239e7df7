"""R8/R8a: the level and reason filter runs in SQL; it must select what ``license_status`` says.

``ViewStore._filter_sql`` (its status part: ``_status_sql``) restates R8 as
SQL over a license row's columns (expiration, units, used units, flags) for
today's date and the policy, so that a filter by level or reason touches
only the matching rows. These
properties put random license facts straight into the views (one pool, one
group; rows written through a :class:`ViewBatch`, as the fold writes them),
then ask ``license_rows`` with random ``LicenseFilter(levels=..., reasons=...)``
for a random today and Policy, and compare with the pure domain functions:
``license_status`` (R8) and ``LicenseFilter.matches`` (R8a).

Run on an in-memory SQLite view store and on PostgreSQL (one schema for the
whole test; the views are emptied between examples).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmc_licensing.domain.filters import LicenseFilter
from esmc_licensing.domain.ids import GroupId, PoolId, PublicId
from esmc_licensing.domain.license import LicenseState
from esmc_licensing.domain.pool import PoolState, PublicIds
from esmc_licensing.domain.status import license_status
from esmc_licensing.domain.values import LicenseType, Policy, Source, StatusLevel, StatusReason
from esmc_licensing.projections.tables import PostgresViews, SQLiteViews, ViewStore
from esmc_licensing.testing import stores

BACKENDS = ["sqlite", "postgres"]
POOL = PoolId(uuid.UUID(int=1))
GROUP = GroupId(uuid.UUID(int=2))
PRODUCT = "ESET Endpoint Security"


def _scaled(fraction: float) -> settings:
    """Examples as a fraction of the loaded profile's (ci: 25); these are cheap."""
    return settings(max_examples=max(5, int(settings().max_examples * fraction)))


@attrs.frozen
class Facts:
    """What R8 decides a license's status from."""

    units: int
    used_units: int
    expires_in: int | None  # days from today; None: no expiration
    suspended: bool
    registered: bool
    obsolete: bool


#: a ratio "as the decimal it is written as" (Policy's docstring): up to 4 places
ratios = st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal(1), places=4, allow_nan=False
).map(float)
policies = st.builds(
    Policy, expiring_days=st.integers(min_value=0, max_value=120), at_risk_ratio=ratios
)
todays = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 1, 1))
status_filters = st.builds(
    LicenseFilter,
    levels=st.lists(st.sampled_from(StatusLevel), max_size=3),
    reasons=st.lists(st.sampled_from(StatusReason), max_size=3),
)


@st.composite
def facts(draw: st.DrawFn, policy: Policy) -> Facts:
    """One license's facts, on the policy's thresholds as often as not."""
    ratio = policy.at_risk_fraction
    units = draw(
        st.integers(min_value=0, max_value=10_000)
        | st.integers(min_value=1, max_value=50).map(lambda k: k * ratio.denominator)
    )
    at_risk_edge = units * ratio.numerator // ratio.denominator
    used = draw(
        st.integers(min_value=0, max_value=2 * units + 2)
        | st.sampled_from([units, units + 1, max(0, units - 1), at_risk_edge, at_risk_edge + 1])
    )
    edge = policy.expiring_days
    expires_in = draw(
        st.none()
        | st.integers(min_value=-5, max_value=edge + 10)
        | st.sampled_from([-1, 0, edge, edge + 1])
    )
    rarely = st.sampled_from([False, False, False, True])  # worse reasons hide the edges
    return Facts(units, used, expires_in, draw(rarely), not draw(rarely), draw(rarely))


def _pid(i: int) -> str:
    return f"AAA-BBB-{i:03d}"


def _put(views: ViewStore, licenses: list[Facts], today: date) -> None:
    """The licenses as rows of one pool in one group, committed at position 1."""
    with views.batch() as b:
        b.put("pool", str(POOL), PoolState(
            pool_id=POOL, version=1, exists=True, name="Acme", group=GROUP,
            source=Source.LICENSE_KEY,
            public_ids=PublicIds(PublicId(_pid(i)) for i in range(len(licenses))),
        ))
        for i, f in enumerate(licenses):
            expires = None if f.expires_in is None else today + timedelta(days=f.expires_in)
            b.put("license", _pid(i), LicenseState(
                public_id=PublicId(_pid(i)), version=1, exists=True, pool_id=POOL,
                source=Source.LICENSE_KEY, license_type=LicenseType.BUSINESS, product=PRODUCT,
                units=f.units, vendor_used_units=f.used_units, expires=expires,
                subscription=expires is None, owner="Acme", suspended=f.suspended,
                registered=f.registered, obsolete=f.obsolete,
                registration_url=None if f.registered else "https://register.example/x",
            ))
        b.reached = 1


def _expected(
    licenses: list[Facts], today: date, policy: Policy, f: LicenseFilter
) -> list[str]:
    out = []
    for i, facts_ in enumerate(licenses):
        expires = None if facts_.expires_in is None else today + timedelta(days=facts_.expires_in)
        status = license_status(
            units=facts_.units, used_units=facts_.used_units, expires=expires, today=today,
            policy=policy, suspended=facts_.suspended, registered=facts_.registered,
            obsolete=facts_.obsolete,
        )
        if f.matches(
            level=status.level, reasons=status.reasons, tags=frozenset(),
            license_type=LicenseType.BUSINESS, product=PRODUCT, public_id=_pid(i), owner="Acme",
        ):
            out.append(_pid(i))
    return out


@pytest.fixture(params=BACKENDS)
def fresh_views(request: pytest.FixtureRequest) -> Iterator[Callable[[], ViewStore]]:
    """Empty views for each example: a new in-memory SQLite store, or one PostgreSQL
    schema's views emptied (``drop``) between examples."""
    if request.param == "sqlite":
        opened: list[ViewStore] = []

        def memory() -> ViewStore:
            while opened:
                opened.pop().close()
            views = SQLiteViews(":memory:")
            opened.append(views)
            return views

        yield memory
        while opened:
            opened.pop().close()
        return
    reason = stores.postgres_unavailable_reason()
    if reason is not None:
        if stores.REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    from eventsourcing.postgres import PostgresDatastore

    with stores.postgres_schema() as schema:
        datastore = PostgresDatastore(
            stores.POSTGRES_DB, stores.POSTGRES_HOST, stores.POSTGRES_PORT,
            stores.POSTGRES_USER, "", schema=schema,
        )
        views = PostgresViews(datastore, schema=schema)

        def emptied() -> ViewStore:
            views.drop()
            return views

        try:
            yield emptied
        finally:
            datastore.close()


@_scaled(4.0)
@given(
    policy_and_licenses=policies.flatmap(
        lambda p: st.tuples(st.just(p), st.lists(facts(p), min_size=1, max_size=12))
    ),
    today=todays,
    filters=st.lists(status_filters, min_size=1, max_size=6),
)
def test_r8a_the_sql_status_filter_selects_what_license_status_says(
    fresh_views: Callable[[], ViewStore],
    policy_and_licenses: tuple[Policy, list[Facts]],
    today: date,
    filters: list[LicenseFilter],
) -> None:
    policy, licenses = policy_and_licenses
    views = fresh_views()
    _put(views, licenses, today)
    everything, _ = views.license_rows(None, None, today, policy)
    assert [pid for pid, _, _ in everything] == [_pid(i) for i in range(len(licenses))]
    for f in filters:
        rows, _ = views.license_rows(None, f, today, policy)
        assert [pid for pid, _, _ in rows] == _expected(licenses, today, policy, f), f
        # the same filter within the group, and within no group
        rows, _ = views.license_rows(frozenset({GROUP}), f, today, policy)
        assert [pid for pid, _, _ in rows] == _expected(licenses, today, policy, f), f
        assert views.license_rows(frozenset(), f, today, policy)[0] == []


@pytest.mark.parametrize(
    ("level", "expected"),
    [(StatusLevel.OK, {0}), (StatusLevel.WARNING, {1, 2})],
    ids=["ok", "warning"],
)
def test_r8a_the_level_filter_agrees_with_r8_on_the_thresholds(
    fresh_views: Callable[[], ViewStore], level: StatusLevel, expected: set[int]
) -> None:
    """3 of 4 units is exactly 75 %: not at risk with 0.75; 76 of 100 is; a license
    expiring in exactly ``expiring_days`` days is expiring (R8)."""
    today = date(2026, 1, 1)
    policy = Policy(at_risk_ratio=0.75, expiring_days=30)
    licenses = [
        Facts(4, 3, 31, False, True, False),
        Facts(100, 76, None, False, True, False),
        Facts(10, 10, 30, False, True, False),
    ]
    views = fresh_views()
    _put(views, licenses, today)
    f = LicenseFilter(levels=[level])
    rows, _ = views.license_rows(None, f, today, policy)
    assert [pid for pid, _, _ in rows] == _expected(licenses, today, policy, f)
    assert {pid for pid, _, _ in rows} == {_pid(i) for i in expected}


def test_r8a_the_at_risk_filter_with_a_ratio_of_many_digits(
    fresh_views: Callable[[], ViewStore],
) -> None:
    today = date(2026, 1, 1)
    policy = Policy(at_risk_ratio=1 / 3)
    # 1,000,000 of 3,000,000 is a little more than 0.3333333333333333: at risk (R8)
    licenses = [Facts(3_000_000, 1_000_000, None, False, True, False)]
    views = fresh_views()
    _put(views, licenses, today)
    f = LicenseFilter(reasons=[StatusReason.AT_RISK_OF_OVERUSE])
    assert _expected(licenses, today, policy, f) == [_pid(0)]
    rows, _ = views.license_rows(None, f, today, policy)
    assert [pid for pid, _, _ in rows] == [_pid(0)]


def test_r28_tag_operations_of_one_batch_apply_in_order(
    fresh_views: Callable[[], ViewStore],
) -> None:
    """A batch writes its runs of tag operations one ``executemany`` each, in the
    order the fold made them: a tag taken off and put back is on, one put on and
    taken off is off, and a target's tags dropped before a new one keeps it."""
    views = fresh_views()
    with views.batch() as b:
        b.tag("computer:1", "Lab")
        b.tag("computer:2", "Lab")
        b.untag("computer:1", "lab")  # any spelling: tags are case-insensitive (R28)
        b.tag("computer:1", "Lab")
        b.tag("computer:3", "Old")
        b.untag("computer:3", "Old")
        b.tag("computer:4", "Old")
        b.untag_all("computer:4")
        b.tag("computer:4", "Lab")
        b.tag("computer:5", "Gone")
        b.drop_tag("gone")
        b.reached = 1
    with views.reading() as c:
        tags = views.tags_of(c, [f"computer:{i}" for i in range(1, 6)])
    assert tags == {
        "computer:1": frozenset({"Lab"}),
        "computer:2": frozenset({"Lab"}),
        "computer:4": frozenset({"Lab"}),
    }


def _alert_row(n: int, at: str) -> tuple[object, ...]:
    """(alert_id, public_id, reason, entered, at, position) as the alert fold raises it."""
    return (f"alert-{n}", f"AAA-BBB-{n:03d}", "EXPIRING", 1, at, n)


def test_r35_a_sinks_round_starts_at_its_mark_which_an_earlier_alert_lowers(
    fresh_views: Callable[[], ViewStore],
) -> None:
    """Every alert before a sink's mark is settled, so an idle round reads from
    there, not from the first alert ever raised. An alert raised before the mark
    (a process whose clock is behind, or a rebuild raising them all again) lowers
    it; a round that began before alerts were raised cannot move the mark."""
    views = fresh_views()
    late, early = _alert_row(2, "2026-03-02 10:00:00.000000"), _alert_row(1, "2026-03-01 10:00:00")
    with views.batch() as b:
        b.raise_alert(late)
        b.reached = 1
    raised = views.alerts_raised()
    assert views.undelivered("hook", 10) == [late]
    views.record_delivery("alert-2", "hook", "delivered", "2026-03-02 10:00:01", None)
    assert views.move_sink_mark("hook", late, raised)
    assert views.sink_mark("hook") == ("2026-03-02 10:00:00.000000", 2, "AAA-BBB-002",
                                       "EXPIRING", 1)
    assert views.undelivered("hook", 10) == []
    with views.batch() as b:
        b.raise_alert(early)  # before the mark
        b.reached = 2
    assert views.sink_mark("hook") == ("2026-03-01 10:00:00", 1, "AAA-BBB-001", "EXPIRING", 1)
    assert views.undelivered("hook", 10) == [early]
    assert not views.move_sink_mark("hook", early, raised)  # alerts were raised since
    assert views.sink_mark("hook")[0] == "2026-03-01 10:00:00"
    assert views.sink_mark("other") is None  # a sink without a round reads from the first
    assert views.undelivered("other", 10) == [early, late]
