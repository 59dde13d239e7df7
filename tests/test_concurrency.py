"""Optimistic concurrency: racing commands cannot both win (architecture, R5, R15)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from esmc_licensing import ConcurrencyConflict, LicenseManagement
from esmc_licensing.domain.events import PoolMoved

from .conftest import AppFactory, Story, branch_story, issue


def _race(n: int, work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as e:  # collected and asserted on below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _events_named(app: LicenseManagement, name: str) -> list[object]:
    return [
        n
        for n in app._core.recorder.select_notifications(start=None, limit=100_000)
        if n.topic == name
    ]


def test_r15_eight_threads_adding_one_key_record_it_once(make_app: AppFactory, vendor) -> None:
    app = make_app()
    key = issue(vendor, "3AB-C12-D34")
    results = _race(8, lambda _: app.add_license_key(app.administrator, key))
    assert results == ["3AB-C12-D34"] * 8
    assert len(_events_named(app, "LicenseAdded")) == 1
    assert len(_events_named(app, "PoolCreated")) == 1


def test_r5_racing_intake_of_one_owner_creates_one_pool(make_app: AppFactory, vendor) -> None:
    app = make_app()
    keys = [issue(vendor, f"3AB-C12-D{i:02d}", owner="Acme") for i in range(8)]
    results = _race(8, lambda i: app.add_license_key(app.administrator, keys[i]))
    assert not [r for r in results if isinstance(r, Exception)]
    [pool] = app.pools(app.administrator)
    assert len(pool.public_ids) == 8
    assert len(_events_named(app, "PoolCreated")) == 1


def test_r13_racing_moves_of_one_pool_all_apply_in_some_order(make_app: AppFactory, vendor) -> None:
    app = make_app()
    story: Story = branch_story(app)
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D34"))
    [pool] = app.pools(app.administrator)
    targets = [story.san_diego, story.sydney, story.tokyo, app.all_group] * 2
    results = _race(8, lambda i: app.move_pools(app.administrator, [pool.pool_id], targets[i]))
    assert not [r for r in results if isinstance(r, Exception)]
    moves = [app._core.mapper.to_domain_event(n) for n in _events_named(app, "PoolMoved")]
    assert all(isinstance(m, PoolMoved) for m in moves)
    # The moves form one chain: each starts where the previous one ended.
    group = app.all_group
    for m in moves:
        assert m.from_group == group
        group = m.to_group
    assert app.pools(app.administrator)[0].group == group


def test_two_applications_on_one_store_see_each_others_writes(
    make_app: AppFactory, vendor, store_env
) -> None:
    first = make_app()
    second = make_app()
    story = branch_story(first)
    pid = second.add_license_key(second.administrator, issue(vendor, "3AB-C12-D34"))
    [pool] = first.pools(first.administrator)
    first.move_pools(first.administrator, [pool.pool_id], story.san_diego)
    assert [v.public_id for v in second.licenses(story.john)] == [pid]
    # second's cached pool state is stale; its move must still start from San Diego
    second.move_pools(second.administrator, [pool.pool_id], story.sydney)
    assert [v.public_id for v in first.licenses(story.larry)] == [pid]
    assert first.licenses(story.john) == []


def test_retries_run_out_as_concurrency_conflict_and_record_nothing(
    make_app: AppFactory, vendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    story = branch_story(app)
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D34"))
    [pool] = app.pools(app.administrator)
    stale = app._core._pool(pool.pool_id)
    # Another writer moves the pool first, then every attempt of ours decides on stale state.
    app.move_pools(app.administrator, [pool.pool_id], story.tokyo)
    monkeypatch.setattr(app._core, "_pool", lambda _pool_id: stale)
    before = app._core.recorder.max_notification_id()
    with pytest.raises(ConcurrencyConflict, match="try again"):
        app.move_pools(app.administrator, [pool.pool_id], story.sydney)
    assert app._core.recorder.max_notification_id() == before
