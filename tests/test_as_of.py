"""R30: replay "as of" a past moment, for one license, from its own events.

``license(actor, pid, as_of=t)`` replays only the events the audit index
lists for that license, the pools it has been in and the directory; it must
answer exactly what a replay of the whole log answers for that license at
t, for every position and moment, visible or not (R14).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings

from esmc_licensing import (
    Adapters,
    InMemoryActivationServer,
    InMemoryAgents,
    LicenseFilter,
    LicenseManagement,
    ManualClock,
    NotFound,
    StatusLevel,
)
from esmc_licensing.testing.strategies import World, commands

from .conftest import PRODUCT, START, AppFactory, issue


@settings(max_examples=max(5, int(settings().max_examples * 0.6)), deadline=None)
@given(sequence=commands(max_size=20))
def test_r30_one_license_as_of_t_equals_the_whole_store_replay(sequence) -> None:
    clock = ManualClock(START)
    vendor = InMemoryActivationServer(clock=clock)
    app = LicenseManagement(adapters=Adapters(activation_server=vendor, clock=clock))
    world = World(app, vendor)
    world.run_all(sequence)
    end = app.position
    moments: list[object] = sorted({0, 1, end // 3, end // 2, end - 1, end, end + 5})
    moments += [START - timedelta(days=1), START, clock.now(), clock.now() + timedelta(days=40)]
    for user in world.users:
        for t in moments:
            try:
                whole = {v.public_id: v for v in app.licenses(user, as_of=t)}  # type: ignore[arg-type]
            except NotFound:  # the user did not exist yet at t: nor does any answer
                whole = {}
            for pid in world.licenses:
                try:
                    alone = app.license(user, pid, as_of=t)  # type: ignore[arg-type]
                except NotFound:
                    assert pid not in whole, (t, pid)
                else:
                    assert whole.get(alone.public_id) == alone, (t, pid)
    app.close()


def test_r30_computers_tasks_and_filters_as_they_were(
    make_app: AppFactory, vendor: InMemoryActivationServer, clock: ManualClock
) -> None:
    app = make_app(agents=InMemoryAgents())
    admin = app.administrator
    pid = app.add_license_key(admin, issue(vendor, "ASO-000-001"))
    before = clock.now()
    clock.advance(timedelta(hours=1))
    pc = app.register_computer(admin, "pc-1", app.all_group, fingerprint="hw-1", products=[PRODUCT])
    app.save_filter(admin, "bad", LicenseFilter(levels=(StatusLevel.ERROR,)))
    registered = clock.now()
    clock.advance(timedelta(hours=1))
    task = app.run_product_activation(admin, pid, [pc])
    app.delete_filter(admin, "bad")
    assert app.computers(admin, as_of=before) == []
    then = app.computer(admin, pc, as_of=registered)
    assert then.name == "pc-1" and not any(p.activated for p in then.products)
    assert any(p.activated for p in app.computer(admin, pc).products)
    assert [c.computer_id for c in app.computers(admin, as_of=registered)] == [pc]
    with pytest.raises(NotFound):  # it did not exist yet
        app.task(admin, task, as_of=registered)
    assert app.task(admin, task).task_id == task
    assert set(app.filters(admin, as_of=registered)) == {"bad"}
    assert app.filters(admin) == {}
