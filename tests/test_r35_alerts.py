"""R35: alerts exactly once per crossing, from the log and the calendar.

The property drives an application with random vendor changes (usage,
units, suspension, renewal, registration), additions and removals,
interleaved with clock advances (hours, days, jumps over months), restarts
of the application, rebuilds of its views and looks at its alerts, and
checks the alerts against a model that evaluates every license's status
(``license_status``, R8) day by day: each crossing into or out of one of
the alerted reasons is exactly one alert, on its day, with an id that never
changes -- whatever was restarted or rebuilt in between.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmc_licensing import (
    Adapters,
    InMemoryActivationServer,
    InMemoryAlertSink,
    InvalidInput,
    LicenseManagement,
    LicensingError,
    ManualClock,
    NotFound,
    Permission,
    Policy,
    StatusReason,
    UserId,
    license_status,
)
from esmc_licensing.projections.alerts import ALERTED, alert_id
from esmc_licensing.projections.runner import rebuild_views
from esmc_licensing.testing import stores

from .conftest import PRODUCT, START

STORES = ["memory", "sqlite", "postgres"]


def _postgres_or_skip() -> None:
    reason = stores.postgres_unavailable_reason()
    if reason is not None:
        if stores.REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)


class Session:
    """One example's store, clock, vendor and the application opened on it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.clock = ManualClock(START)
        self.vendor = InMemoryActivationServer(clock=self.clock)
        self.sink = InMemoryAlertSink()
        self.opened: list[LicenseManagement] = []
        self.app = self.open()

    def open(self) -> LicenseManagement:
        app = LicenseManagement(
            env=self.env,
            adapters=Adapters(
                activation_server=self.vendor, clock=self.clock, alert_sinks=(self.sink,)
            ),
        )
        if self.env["PERSISTENCE_MODULE"].endswith("popo") and self.opened:
            app._core._share_store(self.opened[0]._core)  # a restart: same events, views anew
        self.opened.append(app)
        return app

    def restart(self) -> None:
        if not self.env["PERSISTENCE_MODULE"].endswith("popo"):
            self.app.close()
            self.opened.remove(self.app)
        self.app = self.open()

    def close(self) -> None:
        for app in reversed(self.opened):
            app.close()


@pytest.fixture(params=STORES)
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    backend = request.param
    if backend == "postgres":
        _postgres_or_skip()

    @contextmanager
    def fresh() -> Iterator[Session]:
        if backend == "postgres":
            with stores.postgres_schema() as schema:
                s = Session(stores.postgres_env(schema))
                try:
                    yield s
                finally:
                    s.close()
            return
        env = (
            stores.memory_env()
            if backend == "memory"
            else stores.sqlite_env(tmp_path / f"{uuid.uuid4().hex}.db")
        )
        s = Session(env)
        try:
            yield s
        finally:
            s.close()

    return fresh


# -- the model: every license's alerted reasons, day by day -------------------------------


class Model:
    """What an observer sees by evaluating each license's status every day."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.day = START.date()
        #: public id -> (facts for license_status, alerted reasons seen last)
        self.facts: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, frozenset[str]] = {}
        #: (public id, day, reason, entered)
        self.expected: list[tuple[str, date, str, bool]] = []

    def _reasons(self, facts: dict[str, Any], day: date) -> frozenset[str]:
        status = license_status(today=day, policy=self.policy, **facts)
        return frozenset(r.name for r in status.reasons if r in ALERTED)

    def _cross(self, pid: str, now: frozenset[str], day: date) -> None:
        before = self.seen.get(pid, frozenset())
        for r in sorted(now - before):
            self.expected.append((pid, day, r, True))
        for r in sorted(before - now):
            self.expected.append((pid, day, r, False))
        self.seen[pid] = now

    def days_pass(self, today: date) -> None:
        """The days up to ``today`` come, with the facts as they were."""
        while self.day < today:
            self.day += timedelta(days=1)
            for pid, facts in sorted(self.facts.items()):
                self._cross(pid, self._reasons(facts, self.day), self.day)

    def observe(self, app: LicenseManagement, today: date) -> None:
        """What the administrator's license list shows now (after a command)."""
        self.days_pass(today)
        views = {str(v.public_id): v for v in app.licenses(app.administrator)}
        for pid in sorted(set(self.seen) | set(views)):
            v = views.get(pid)
            if v is None:
                self.facts.pop(pid, None)
                self._cross(pid, frozenset(), today)
                continue
            reasons = v.status.reasons
            self.facts[pid] = {
                "units": v.units,
                "used_units": v.used_units,
                "expires": v.expires,
                "suspended": StatusReason.SUSPENDED in reasons,
                "registered": StatusReason.NOT_REGISTERED not in reasons,
                "obsolete": StatusReason.OBSOLETE in reasons,
            }
            now = frozenset(r.name for r in reasons if r in ALERTED)
            assert now == self._reasons(self.facts[pid], today)
            self._cross(pid, now, today)


# -- the steps ------------------------------------------------------------------------------

_IDS = [f"A{n:02d}-BBB-CCC" for n in range(4)]

step = st.one_of(
    st.tuples(
        st.just("add"), st.integers(0, 3), st.integers(1, 20), st.integers(-5, 80), st.booleans()
    ),
    st.tuples(st.just("usage"), st.integers(0, 3), st.integers(0, 25)),
    st.tuples(st.just("units"), st.integers(0, 3), st.integers(1, 20)),
    # units and usage change together: one save, whose halves nobody sees apart
    st.tuples(st.just("order"), st.integers(0, 3), st.integers(1, 20), st.integers(0, 25)),
    st.tuples(st.just("suspend"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("renew"), st.integers(0, 3), st.integers(-3, 90)),
    st.tuples(st.just("register"), st.integers(0, 3)),
    st.tuples(st.just("remove"), st.integers(0, 3)),
    st.tuples(st.just("hours"), st.integers(1, 40)),
    st.tuples(st.just("days"), st.integers(1, 120)),
    st.tuples(st.just("restart")),
    st.tuples(st.just("rebuild")),
    st.tuples(st.just("look")),
    st.tuples(st.just("deliver"), st.booleans()),
)


def _run_step(s: Session, issued: set[str], step: tuple[Any, ...]) -> None:
    app, vendor, clock = s.app, s.vendor, s.clock
    admin = app.administrator
    kind = step[0]
    today = clock.now().date()
    if kind == "add":
        _, i, units, days_left, registered = step
        pid = _IDS[i]
        if pid not in issued:
            vendor.issue(
                public_id=pid,
                product=PRODUCT,
                units=units,
                owner=f"Owner {i}",
                expires=today + timedelta(days=days_left),
                registered=registered,
            )
            issued.add(pid)
        with suppress(LicensingError):  # added already: refused or nothing recorded
            app.add_license_key(admin, vendor.key_of(pid))
    elif kind in ("usage", "units", "order", "suspend", "renew", "register"):
        pid = _IDS[step[1]]
        if pid not in issued:
            return
        if kind == "usage":
            vendor.report_usage(pid, step[2])
        elif kind == "units":
            vendor.set_units(pid, step[2])
        elif kind == "order":
            vendor.set_units(pid, step[2])
            vendor.report_usage(pid, step[3])
        elif kind == "suspend":
            (vendor.suspend if step[2] else vendor.unsuspend)(pid)
        elif kind == "renew":
            vendor.renew(pid, today + timedelta(days=step[2]))
        else:
            vendor.register(pid)
        app.synchronize()
    elif kind == "remove":
        with suppress(NotFound):
            view = app.license(admin, _IDS[step[1]])
            app.remove_pools(admin, [view.pool_id], confirm=True)
    elif kind == "hours":
        clock.advance(timedelta(hours=step[1]))
    elif kind == "days":
        clock.advance(timedelta(days=step[1]))
    elif kind == "restart":
        s.restart()
    elif kind == "rebuild":
        rebuild_views(None, app=app)
    elif kind == "look":
        app.alerts(admin)
    elif kind == "deliver":
        if step[1]:
            s.sink.fail_next(1)
        app.deliver_alerts()


@settings(max_examples=max(8, settings().max_examples // 2))
@given(steps=st.lists(step, min_size=1, max_size=25))
def test_r35_alerts_are_exactly_the_daily_crossings(
    session: Callable[[], Any], steps: list[tuple[Any, ...]]
) -> None:
    """R35/R8: for random commands, clock jumps, restarts and rebuilds, the alerts
    are exactly the crossings a day-by-day evaluation of the status sees: none
    missed, none twice, each on its day, and an alert's id never changes."""
    with session() as s:
        model = Model(Policy())
        issued: set[str] = set()
        ids_seen: dict[str, tuple[str, date, str, bool]] = {}
        looks: list[tuple[datetime, list[Any]]] = []
        for st_ in steps:
            _run_step(s, issued, st_)
            if st_[0] == "look":
                looks.append((s.clock.now(), _undelivered(s.app.alerts(s.app.administrator))))
            s.clock.advance(timedelta(seconds=1))  # saves are told apart by their time
            model.observe(s.app, s.clock.now().date())
            if st_[0] in ("look", "restart", "rebuild"):
                for a in s.app.alerts(s.app.administrator):
                    ids_seen[a.alert_id] = (
                        str(a.public_id),
                        a.when.date(),
                        a.reason.name,
                        a.entered,
                    )
        s.clock.advance(timedelta(days=3))
        model.observe(s.app, s.clock.now().date())
        alerts = s.app.alerts(s.app.administrator)
        got = [(str(a.public_id), a.when.date(), a.reason.name, a.entered) for a in alerts]
        assert sorted(got) == sorted(model.expected)
        ids = [a.alert_id for a in alerts]
        assert len(ids) == len(set(ids)), "an alert raised twice"
        by_id = {a.alert_id: t for a, t in zip(alerts, got, strict=True)}
        for alert_key, seen in ids_seen.items():
            assert by_id.get(alert_key) == seen, "an alert changed or vanished"
        # oldest first, each license's crossings in the order they happened
        assert [a.when for a in alerts] == sorted(a.when for a in alerts)
        # R30: as of each look, the alerts are what that look answered
        for then, seen_then in looks[-3:]:
            assert s.app.alerts(s.app.administrator, as_of=then) == seen_then, then
        # what the sink received is what was raised, each id at least once
        received = {a["alert_id"] for a in s.sink.delivered}
        assert received <= set(ids)


def test_r35_date_crossings_raised_on_their_day_after_downtime(
    session: Callable[[], Any],
) -> None:
    """R35: "30 days left" and "expired" are raised on their day even when the
    application was down then and nothing was recorded; a restart raises none
    of them twice, and the ids are the ones derived from license, reason,
    direction and day."""
    with session() as s:
        admin = s.app.administrator
        key = s.vendor.issue(
            public_id="EXP-000-001",
            product=PRODUCT,
            units=5,
            expires=date(2026, 3, 1),
            owner="Owner",
        )
        s.app.add_license_key(admin, key)
        assert s.app.alerts(admin) == []
        s.restart()
        s.clock.advance(timedelta(days=100))  # down over both crossings
        alerts = s.app.alerts(s.app.administrator)
        pid = "EXP-000-001"
        assert [(a.reason, a.entered, a.when) for a in alerts] == [
            (StatusReason.EXPIRING, True, datetime(2026, 1, 30, tzinfo=UTC)),
            (StatusReason.EXPIRED, True, datetime(2026, 3, 2, tzinfo=UTC)),
            (StatusReason.EXPIRING, False, datetime(2026, 3, 2, tzinfo=UTC)),
        ]
        assert [a.alert_id for a in alerts] == [
            alert_id(pid, "EXPIRING", True, "d2026-01-30"),
            alert_id(pid, "EXPIRED", True, "d2026-03-02"),
            alert_id(pid, "EXPIRING", False, "d2026-03-02"),
        ]
        s.restart()
        s.clock.advance(timedelta(days=1))
        assert s.app.alerts(s.app.administrator) == alerts


def _undelivered(alerts: list[Any]) -> list[Any]:
    """The alerts without their deliveries (not part of the recorded history)."""
    return [attrs.evolve(a, deliveries={}) for a in alerts]


def test_r30_alerts_as_of_a_moment_are_those_raised_by_then_as_the_actor_saw_them(
    session: Callable[[], Any],
) -> None:
    """R30/R35: ``alerts(as_of=t)`` answers what ``alerts`` answered at ``t``, with
    the actor's visibility then (a pool moved later does not show), the same
    ids, and no deliveries; a log position works as well as a time."""
    with session() as s:
        app = s.app
        admin = app.administrator
        branch = app.create_group(admin, "Branch")
        user = app.create_user(admin, "bob", branch)
        app.grant(admin, user, branch, Permission.READ)
        key = s.vendor.issue(
            public_id="ASO-000-001", product=PRODUCT, units=5, expires=date(2026, 2, 15),
            owner="Owner",
        )
        app.add_license_key(admin, key)
        s.clock.advance(timedelta(days=20))  # 2026-01-21: within 30 days of expiry
        app.create_group(admin, "Marker")  # a log position of that day: its time
        then, position_then = s.clock.now(), app.position
        seen_then = app.alerts(admin)
        assert [(a.reason, a.entered) for a in seen_then] == [(StatusReason.EXPIRING, True)]
        s.clock.advance(timedelta(hours=1))
        app.deliver_alerts()
        app.move_pools(admin, [app.license(admin, "ASO-000-001").pool_id], branch)
        s.clock.advance(timedelta(days=40))  # expired since
        assert len(app.alerts(admin)) == 3 and app.alerts(user)
        assert app.alerts(admin)[0].deliveries  # delivered, live
        assert app.alerts(admin, as_of=then) == _undelivered(seen_then)
        assert app.alerts(admin, as_of=position_then) == _undelivered(seen_then)
        assert app.alerts(user, as_of=then) == []  # the pool was not in the branch yet
        assert app.alerts(admin, as_of=then, since=then + timedelta(seconds=1)) == []


def test_r35_alerts_follow_the_license_visibility(session: Callable[[], Any]) -> None:
    """R35/R14: a branch administrator sees the alerts of the licenses distributed
    to their group only, and all of them once the pool is moved there."""
    with session() as s:
        app = s.app
        admin = app.administrator
        branch = app.create_group(admin, "Branch")
        user = app.create_user(admin, "bob", branch)
        app.grant(admin, user, branch, Permission.WRITE)
        for n in (1, 2):
            key = s.vendor.issue(
                public_id=f"VIS-000-00{n}",
                product=PRODUCT,
                units=10,
                expires=date(2026, 1, 20),
                owner=f"Owner {n}",
            )
            app.add_license_key(admin, key)
        assert {str(a.public_id) for a in app.alerts(admin)} == {"VIS-000-001", "VIS-000-002"}
        assert app.alerts(user) == []
        pool = app.license(admin, "VIS-000-002").pool_id
        app.move_pools(admin, [pool], branch)
        assert [str(a.public_id) for a in app.alerts(user)] == ["VIS-000-002"]
        since = app.alerts(user)[0].when + timedelta(seconds=1)
        assert app.alerts(user, since=since) == []


def test_r35_alerts_since_needs_an_aware_moment(session: Callable[[], Any]) -> None:
    """R35: ``since`` is a date or an aware datetime; anything else is refused."""
    with session() as s:
        admin = s.app.administrator
        with pytest.raises(InvalidInput):
            s.app.alerts(admin, since=datetime(2026, 1, 1))
        with pytest.raises(InvalidInput):
            s.app.alerts(admin, since="yesterday")  # type: ignore[arg-type]
        with pytest.raises(NotFound):
            s.app.alerts(UserId.derive("nobody"))


def test_r35_a_save_is_evaluated_once_complete(session: Callable[[], Any]) -> None:
    """R35: a sync that raises units and usage together (one save) raises
    nothing, although "units raised, usage not yet" would have left
    AT_RISK_OF_OVERUSE: nobody can see a save's halves apart."""
    with session() as s:
        admin = s.app.administrator
        key = s.vendor.issue(
            public_id="ORD-000-001",
            product=PRODUCT,
            units=10,
            expires=date(2027, 1, 1),
            owner="Owner",
        )
        s.vendor.report_usage("ORD-000-001", 10)
        s.app.add_license_key(admin, key)
        first = s.app.alerts(admin)
        assert [(a.reason, a.entered) for a in first] == [(StatusReason.AT_RISK_OF_OVERUSE, True)]
        s.clock.advance(timedelta(hours=1))
        s.vendor.set_units("ORD-000-001", 20)
        s.vendor.report_usage("ORD-000-001", 20)
        s.app.synchronize()
        assert s.app.alerts(admin) == first
        s.clock.advance(timedelta(hours=1))
        s.vendor.report_usage("ORD-000-001", 21)
        s.app.synchronize()
        assert {(a.reason, a.entered) for a in s.app.alerts(admin)[1:]} == {
            (StatusReason.OVERUSED, True),
            (StatusReason.AT_RISK_OF_OVERUSE, False),
        }
