"""Aggregates load by id: from the cache, or from a snapshot and the events after it.

R30: whatever path a state comes by (cache, snapshot plus later events, or
the whole fold), it is the fold of the aggregate's events. The cache is
bounded (``ESMC_CACHE_SIZE``) and snapshots are kept every
``ESMC_SNAPSHOT_EVERY`` events.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from esmc_licensing import Adapters, InvalidInput, LicenseManagement
from esmc_licensing.domain import computer
from esmc_licensing.domain.ids import ComputerId
from esmc_licensing.testing import stores

from .conftest import START


def _fold(app: LicenseManagement, cid: ComputerId) -> computer.ComputerState:
    state = computer.initial(cid)
    for event in app._core.event_log.events_of(cid):
        state = computer.evolve(state, event)
    return state


def test_r30_a_state_from_a_snapshot_and_later_events_equals_the_whole_fold(
    tmp_path: Path, vendor, clock
) -> None:
    env = {**stores.sqlite_env(tmp_path / "store.db"), "ESMC_SNAPSHOT_EVERY": "20"}
    app = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor, clock=clock))
    cid = app.register_computer(app.administrator, "pc", app.all_group, fingerprint="hw-1")
    for i in range(45):
        app.computer_connected(cid, at=START + timedelta(minutes=i))
    app.close()

    fresh = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor, clock=clock))
    assert fresh._core.views.snapshots([cid]).get(cid) is None  # never loaded by id yet
    loaded = fresh._core._computer(cid)  # 46 events folded: a snapshot is kept
    snapshot = fresh._core.views.snapshots([cid]).get(cid)
    assert snapshot is not None and snapshot[0] == loaded.version == 46
    for i in range(5):
        fresh.computer_connected(cid, at=START + timedelta(hours=1, minutes=i))
    fresh.close()

    again = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor, clock=clock))
    from_snapshot = again._core._computer(cid)  # the snapshot (v46) and the 5 events after it
    assert from_snapshot == _fold(again, cid)
    assert from_snapshot.last_connected == START + timedelta(hours=1, minutes=4)
    again.close()


def test_r30_the_aggregate_cache_is_bounded(tmp_path: Path, vendor, clock) -> None:
    env = {**stores.sqlite_env(tmp_path / "store.db"), "ESMC_CACHE_SIZE": "5"}
    app = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor, clock=clock))
    ids = [
        app.register_computer(app.administrator, f"pc-{i}", app.all_group, fingerprint=f"hw-{i}")
        for i in range(20)
    ]
    assert len(app._core._states) <= 5
    for cid in ids:  # loaded again from the store, each equal to its fold
        assert app._core._computer(cid) == _fold(app, cid)
    assert len(app._core._states) <= 5
    app.close()


@pytest.mark.parametrize(
    ("name", "value"),
    [("ESMC_CACHE_SIZE", "abc"), ("ESMC_CACHE_SIZE", "0"), ("ESMC_SNAPSHOT_EVERY", "-3")],
)
def test_r30_cache_and_snapshot_settings_are_checked(name: str, value: str) -> None:
    with pytest.raises(InvalidInput, match=name):
        LicenseManagement(env={name: value})


def test_r30_aggregates_prefetched_together_equal_those_loaded_one_by_one(
    tmp_path: Path, vendor, clock
) -> None:
    from functools import partial

    env = {**stores.sqlite_env(tmp_path / "store.db"), "ESMC_SNAPSHOT_EVERY": "3"}
    app = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor, clock=clock))
    ids = [
        app.register_computer(app.administrator, f"pc-{i}", app.all_group, fingerprint=f"hw-{i}")
        for i in range(6)
    ]
    for n, cid in enumerate(ids):  # 1 to 6 check-ins each: some snapshotted, some not
        for i in range(n + 1):
            app.computer_connected(cid, at=START + timedelta(minutes=i))
    for cid in ids[::2]:
        app._core._states.clear()
        app._core._computer(cid)  # leaves a snapshot where the history is long enough
    app._core._states.clear()
    unknown = ComputerId.derive("never registered")
    app._core._prefetch(
        [(c, partial(computer.initial, c), computer.evolve) for c in [*ids, unknown]]
    )
    prefetched = {c: app._core._states[c.int] for c in [*ids, unknown]}
    for cid, state in prefetched.items():
        assert state == _fold(app, cid)
    assert not prefetched[unknown].exists
    app.close()


def test_r30_a_save_that_grows_an_aggregate_by_many_events_snapshots_it(
    tmp_path: Path, vendor, clock
) -> None:
    """One activation on many computers adds a seat a computer to its license and a
    result a target to its task; when the cache drops them, loading them must not
    fold all of those events, so the save snapshots what it grew by
    ``ESMC_SNAPSHOT_EVERY`` events or more."""
    from esmc_licensing import InMemoryAgents
    from esmc_licensing.domain import task
    from esmc_licensing.domain.ids import license_aggregate_id

    env = {**stores.sqlite_env(tmp_path / "store.db"), "ESMC_SNAPSHOT_EVERY": "20"}
    app = LicenseManagement(env=env, adapters=Adapters(
        activation_server=vendor, clock=clock, agents=InMemoryAgents()))
    admin, product = app.administrator, "ESET Endpoint Security"
    pid = app.add_license_key(admin, vendor.issue(
        public_id="WID-000-001", product=product, units=30, owner="Wide",
        expires=(START + timedelta(days=365)).date()))
    cids = [app.register_computer(admin, f"pc-{i}", app.all_group, fingerprint=f"hw-{i}",
                                  products=[product]) for i in range(25)]
    task_id = app.run_product_activation(admin, pid, cids)
    license_id = license_aggregate_id(pid)
    grown = app._core.views.snapshots([license_id, task_id])
    license_state = app._core._license(pid)
    task_state = app._core._load(task_id, lambda: task.initial(task_id), task.evolve)
    assert grown[license_id][0] == license_state.version  # 25 seats taken
    assert grown[task_id][0] == task_state.version  # created, 25 results
    small = app.run_product_activation(admin, pid, [cids[0]])  # a seat it holds: no new one
    assert app._core.views.snapshots([small]) == {}
    app.close()


def test_r18_r19_r30_a_pool_larger_than_the_cache_loads_in_parts_and_is_snapshotted(
    tmp_path: Path, vendor, clock
) -> None:
    """An EMA2 company with more licenses than the aggregate cache holds: the
    import snapshots the pool it grew by one join a license; a sync that finds
    nothing new, a preview of moving the pool and its removal decide on every
    license, loaded a part at a time (not one by one past the cache's size)."""
    from esmc_licensing import AccountKind, Credentials, Ema2AccountType, InMemoryAccounts
    from esmc_licensing.domain.ids import PublicId

    from .conftest import issue

    accounts = InMemoryAccounts(vendor)
    pids = [f"BIG-{i // 100:03d}-{i % 100:03d}" for i in range(60)]
    for pid in pids:
        issue(vendor, pid, owner="", units=5)
    creds = Credentials("msp@example.com", "s3cr3t-Passw0rd")
    accounts.add_ema2_account(creds, Ema2AccountType.MSP, companies={"Big": pids})
    env = {**stores.sqlite_env(tmp_path / "store.db"), "ESMC_SNAPSHOT_EVERY": "20",
           "ESMC_CACHE_SIZE": "16"}
    app = LicenseManagement(env=env, adapters=Adapters(
        activation_server=vendor, clock=clock, accounts=accounts))
    app.connect_account(app.administrator, AccountKind.EMA2, creds)
    (pool,) = app.pools(app.administrator)
    assert app._core.views.snapshots([pool.pool_id])[pool.pool_id][0] == 61  # made, 60 joins
    loads: list[int] = []
    load_many = app._core._load_many
    app._core._load_many = lambda wanted: loads.append(len(wanted)) or load_many(wanted)
    before = app.position
    report = app.synchronize()
    assert report.ok and report.events == 0 and app.position == before
    assert sum(loads) >= len(pids) and max(loads) == 8  # half the cache a part
    assert sorted(str(p) for p in app._core._pool(pool.pool_id).public_ids) == pids
    assert app._core._license(PublicId(pids[-1])).exists
    # a decision on every license of the pool loads them the same way (R37, R19)
    branch = app.create_group(app.administrator, "Branch")
    loads.clear()
    app.preview_move(app.administrator, [pool.pool_id], branch)
    app.remove_pools(app.administrator, [pool.pool_id], confirm=True)
    assert max(loads) == 8 and loads.count(1) <= 3  # the directory, the pool, the tags
    assert app.licenses(app.administrator) == []
    app.close()
