"""A Hypothesis state machine over seats (R20, R21, R23-R27).

Steps: register a computer, activate, deactivate, remove (with or without
deactivation), suspend or unsuspend at the vendor, report usage at the vendor
(both followed by a sync), advance the clock. After every step:

- each license's used units equal the number of (license, computer, product)
  triples holding a seat, or the usage the vendor reports when that is more
  (``used_units = max(seats, vendor usage)``: the vendor's count includes
  activations made here);
- each computer shows its product activated exactly when it holds a seat of
  an unsuspended license, and deactivated-by-suspension when the license is
  suspended (R27);
- no activation was accepted at or beyond the policy's ceiling (checked in the
  activation step against the model);
- the overuse facts of each license alternate (overused, back within, ...)
  and the last one says whether the license is overused now.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from esmc_licensing import (
    Adapters,
    ComputerId,
    InMemoryActivationServer,
    LicenseManagement,
    LicenseUnusable,
    ManualClock,
    OverusePolicy,
    OveruseRefused,
    Policy,
)
from esmc_licensing.adapters.agents import InMemoryAgents

from .conftest import PRODUCT
from .seats_support import overuse_facts

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
EXPIRES = date(2026, 3, 1)
PIDS = ("3AB-C12-D01", "3AB-C12-D02")


class Seats(RuleBasedStateMachine):
    @initialize(
        policy=st.sampled_from(list(OverusePolicy)),
        units=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    )
    def open(self, policy: OverusePolicy, units: tuple[int, int]) -> None:
        self.clock = ManualClock(START)
        self.vendor = InMemoryActivationServer(clock=self.clock)
        self.policy = policy
        self.app = LicenseManagement(
            adapters=Adapters(
                activation_server=self.vendor, clock=self.clock, agents=InMemoryAgents()
            ),
            policy=Policy(overuse=policy),
        )
        self.admin = self.app.administrator
        self.units = dict(zip(PIDS, units, strict=True))
        for pid in PIDS:
            key = self.vendor.issue(
                public_id=pid, product=PRODUCT, units=self.units[pid], expires=EXPIRES,
                owner=f"Owner {pid}",
            )
            self.app.add_license_key(self.admin, key)
        self.computers: list[ComputerId] = []
        self.removed: set[ComputerId] = set()
        for _ in range(3):
            self.register()
        #: the license whose seat a computer's product holds (activated or suspended)
        self.holder: dict[ComputerId, str] = {}
        self.reported = dict.fromkeys(PIDS, 0)
        self.suspended = dict.fromkeys(PIDS, False)

    # -- the model --------------------------------------------------------------------

    def used(self, pid: str) -> int:
        return max(sum(1 for h in self.holder.values() if h == pid), self.reported[pid])

    def live(self) -> list[ComputerId]:
        return [c for c in self.computers if c not in self.removed]

    def pick(self, index: int) -> ComputerId | None:
        live = self.live()
        return live[index % len(live)] if live else None

    # -- steps ------------------------------------------------------------------------

    @rule()
    def register(self) -> None:
        """A new computer (fresh hardware fingerprint, R20)."""
        n = len(self.computers)
        cid = self.app.register_computer(
            self.admin, f"pc-{n}", self.app.all_group, fingerprint=f"hw-{n}", products=[PRODUCT]
        )
        self.computers.append(cid)

    @rule(which=st.integers(0, 1), index=st.integers(0, 20))
    def activate(self, which: int, index: int) -> None:
        cid = self.pick(index)
        if cid is None:
            return
        pid = PIDS[which]
        ceiling = self.policy.ceiling(self.units[pid])
        try:
            self.app.run_product_activation(self.admin, pid, [cid])
        except LicenseUnusable:
            assert self.suspended[pid] or self.clock.now().date() > EXPIRES
            return
        except OveruseRefused:
            assert self.holder.get(cid) != pid
            assert ceiling is not None and self.used(pid) >= ceiling
            return
        assert not self.suspended[pid] and self.clock.now().date() <= EXPIRES
        if self.holder.get(cid) != pid:
            # a new seat: accepted only below the ceiling (R23)
            assert ceiling is None or self.used(pid) < ceiling, "activation beyond the ceiling"
        self.holder[cid] = pid

    @rule(index=st.integers(0, 20))
    def deactivate(self, index: int) -> None:
        cid = self.pick(index)
        if cid is None:
            return
        self.app.deactivate_products(self.admin, [cid])
        self.holder.pop(cid, None)

    @rule(index=st.integers(0, 20), deactivate=st.booleans())
    def remove(self, index: int, deactivate: bool) -> None:
        cid = self.pick(index)
        if cid is None:
            return
        result = self.app.remove_computer(self.admin, cid, deactivate=deactivate)
        self.removed.add(cid)
        if deactivate:
            self.holder.pop(cid, None)
            assert result.warning is None
        else:
            assert (result.warning is not None) == (cid in self.holder)

    @rule(which=st.integers(0, 1))
    def suspend_or_unsuspend(self, which: int) -> None:
        pid = PIDS[which]
        if self.suspended[pid]:
            self.vendor.unsuspend(pid)
        else:
            self.vendor.suspend(pid)
        self.suspended[pid] = not self.suspended[pid]
        self.app.synchronize()

    @rule(which=st.integers(0, 1), used=st.integers(0, 9))
    def vendor_reports_usage(self, which: int, used: int) -> None:
        pid = PIDS[which]
        self.vendor.report_usage(pid, used)
        self.reported[pid] = used
        self.app.synchronize()

    @rule(days=st.integers(0, 40))
    def advance_clock(self, days: int) -> None:
        self.clock.advance(timedelta(days=days))

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def used_units_are_the_seats_held(self) -> None:
        if not hasattr(self, "app"):
            return
        for pid in PIDS:
            assert self.app.license(self.admin, pid).used_units == self.used(pid), pid

    @invariant()
    def computers_show_what_holds_a_seat(self) -> None:
        if not hasattr(self, "app"):
            return
        for cid in self.live():
            [p] = self.app.computer(self.admin, cid).products
            pid = self.holder.get(cid)
            suspended = pid is not None and self.suspended[pid]
            assert p.public_id == pid
            assert p.activated == (pid is not None and not suspended)
            assert p.suspended == suspended

    @invariant()
    def overuse_facts_alternate(self) -> None:
        if not hasattr(self, "app"):
            return
        for pid in PIDS:
            facts = overuse_facts(self.app, pid)
            expected = ["LicenseOverused", "LicenseBackWithinUnits"] * len(facts)
            assert facts == expected[: len(facts)], facts
            overused = bool(facts) and facts[-1] == "LicenseOverused"
            assert overused == (self.used(pid) > self.units[pid])

    def teardown(self) -> None:
        if hasattr(self, "app"):
            self.app.close()


Seats.TestCase.settings = settings(settings.default, stateful_step_count=30)
test_r23_stateful_seats = Seats.TestCase
