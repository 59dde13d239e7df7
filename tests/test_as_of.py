"""R30: replay "as of" a past moment, for one license, from its own events.

``license(actor, pid, as_of=t)`` replays only the events the audit index
lists for that license, the pools it has been in and the directory; it must
answer exactly what a replay of the whole log answers for that license at
t, for every position and moment, visible or not (R14).
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings

from esmc_licensing import (
    Adapters,
    InMemoryActivationServer,
    LicenseManagement,
    ManualClock,
    NotFound,
)
from esmc_licensing.testing.strategies import World, commands

from .conftest import START


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
