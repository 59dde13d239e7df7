"""R18 as a property: after a sync the store equals the vendor's view, and a
second sync records nothing — for any sequence of vendor-side changes and syncs.

Every example gets a store of its own (a fresh PostgreSQL schema, SQLite file
or in-memory recorder). The number of examples follows the loaded Hypothesis
profile (ci: 25).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esmc_licensing import (
    AccountKind,
    Adapters,
    Credentials,
    Ema2AccountType,
    InMemoryAccounts,
    InMemoryActivationServer,
    LicenseManagement,
    ManualClock,
)
from esmc_licensing.testing import stores

from .conftest import PRODUCT, START

MSP = Credentials("msp@example.com", "pw-msp")
EBA = Credentials("eba@example.com", "pw-eba")
IDS = [f"P{i:02d}-000-000" for i in range(8)]
# license i belongs to: EMA2 company A (0-2), EMA2 company B (3-5), the EBA account (6-7)
HOME = {
    0: ("msp", "A"),
    1: ("msp", "A"),
    2: ("msp", "A"),
    3: ("msp", "B"),
    4: ("msp", "B"),
    5: ("msp", "B"),
    6: ("eba", "Acme"),
    7: ("eba", "Acme"),
}

index = st.integers(0, len(IDS) - 1)
step = st.one_of(
    st.tuples(st.just("units"), index, st.integers(1, 50)),
    st.tuples(st.just("renew"), index, st.integers(-400, 800)),
    st.tuples(st.just("usage"), index, st.integers(0, 60)),
    st.tuples(st.just("suspend"), index),
    st.tuples(st.just("unsuspend"), index),
    st.tuples(st.just("obsolete"), index),
    st.tuples(st.just("register"), index),
    st.tuples(st.just("join"), index),
    st.tuples(st.just("sync")),
    st.tuples(st.just("fail"), st.sampled_from(["msp", "eba"])),
)


@pytest.fixture
def fresh(store_env: dict[str, str], tmp_path: Path) -> Any:
    module = store_env["PERSISTENCE_MODULE"]

    @contextmanager
    def store() -> Iterator[dict[str, str]]:
        if module.endswith("postgres"):
            with stores.postgres_schema() as schema:
                yield stores.postgres_env(schema)
        elif module.endswith("sqlite"):
            yield stores.sqlite_env(tmp_path / f"{uuid.uuid4().hex}.db")
        else:
            yield stores.memory_env()

    return store


def _publish(accounts: InMemoryAccounts, joined: set[int]) -> None:
    companies: dict[str, list[str]] = {"A": [], "B": []}
    eba: list[str] = []
    for i in sorted(joined):
        who, company = HOME[i]
        (companies[company] if who == "msp" else eba).append(IDS[i])
    accounts.add_ema2_account(MSP, Ema2AccountType.MSP, companies=companies)
    accounts.add_eba_account(EBA, "Acme", eba)


def _assert_store_equals_vendor(
    app: LicenseManagement, vendor: InMemoryActivationServer, joined: set[int], failed: set[str]
) -> None:
    in_store = {str(v.public_id) for v in app.licenses(app.administrator)}
    for i in joined:
        if HOME[i][0] in failed:
            continue  # a failed account's licenses stay as they were
        assert IDS[i] in in_store
        d = vendor.details_of(IDS[i])
        s = app._core._license(d.public_id)
        assert (s.units, s.expires, s.vendor_used_units, s.suspended, s.obsolete, s.registered) == (
            d.units,
            d.expires,
            d.used_units,
            d.suspended,
            d.obsolete,
            d.registered,
        ), IDS[i]
        assert s.overused == (d.used_units > d.units)


@given(steps=st.lists(step, max_size=20), initially=st.sets(index, min_size=1))
def test_r18_after_a_sync_the_store_equals_the_vendor_and_a_second_sync_records_nothing(
    fresh: Any, steps: list[tuple[Any, ...]], initially: set[int]
) -> None:
    with fresh() as env:
        clock = ManualClock(START)
        vendor = InMemoryActivationServer(clock=clock)
        for i, pid in enumerate(IDS):
            vendor.issue(
                public_id=pid,
                product=PRODUCT,
                units=10,
                expires=date(2027, 1, 1),
                registered=i % 4 != 0,
            )
        accounts = InMemoryAccounts(vendor)
        joined = set(initially)
        _publish(accounts, joined)
        app = LicenseManagement(
            env=env, adapters=Adapters(activation_server=vendor, accounts=accounts, clock=clock)
        )
        try:
            app.connect_account(app.administrator, AccountKind.EMA2, MSP)
            app.connect_account(app.administrator, AccountKind.EBA, EBA)
            # an account with nothing readable yet still connects (EBA) or is refused (EMA2)
            _run(app, vendor, accounts, clock, [*steps, ("sync",)], joined)
        finally:
            app.close()


def _run(
    app: LicenseManagement,
    vendor: InMemoryActivationServer,
    accounts: InMemoryAccounts,
    clock: ManualClock,
    steps: list[tuple[Any, ...]],
    joined: set[int],
) -> None:
    failing: set[str] = set()
    present = {str(v.public_id) for v in app.licenses(app.administrator)}
    for s in steps:
        kind, args = s[0], s[1:]
        if kind == "sync":
            report = app.synchronize()
            assert {f.source.split()[-1].split("@")[0] for f in report.failed} == failing
            _assert_store_equals_vendor(app, vendor, joined, failing)
            now_present = {str(v.public_id) for v in app.licenses(app.administrator)}
            # nothing appears but what a healthy account holds, nothing disappears
            assert present <= now_present
            assert now_present - present <= {IDS[i] for i in joined if HOME[i][0] not in failing}
            present = now_present
            before = app._core.recorder.max_notification_id()
            again = app.synchronize()
            assert again.events == 0 and app._core.recorder.max_notification_id() == before
            for who in failing:
                accounts.heal_account(f"{who}@example.com")
            failing.clear()
            clock.advance(timedelta(hours=1))
            continue
        if kind == "fail":
            failing.add(args[0])
            accounts.fail_account(f"{args[0]}@example.com")
            continue
        pid = IDS[args[0]]
        if kind == "units":
            vendor.set_units(pid, args[1])
        elif kind == "renew":
            vendor.renew(pid, date(2027, 1, 1) + timedelta(days=args[1]))
        elif kind == "usage":
            vendor.report_usage(pid, args[1])
        elif kind == "suspend":
            vendor.suspend(pid)
        elif kind == "unsuspend":
            vendor.unsuspend(pid)
        elif kind == "obsolete":
            vendor.obsolete(pid)
        elif kind == "register":
            vendor.register(pid)
        elif kind == "join":
            joined.add(args[0])
            _publish(accounts, joined)
