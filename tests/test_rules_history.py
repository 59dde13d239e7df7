"""R29: every change is an event with who, when and what; nothing is erased."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest
from hypothesis import given, settings

from esmc_licensing import (
    Adapters,
    ConfirmationRequired,
    InMemoryActivationServer,
    LicenseManagement,
    ManualClock,
    NotFound,
    PermissionDenied,
)
from esmc_licensing.projections.runner import ViewUpdater
from esmc_licensing.projections.tables import SQLiteViews
from esmc_licensing.testing.strategies import World, commands

from .conftest import START, Story, issue, pool_of, recorded


def whats(entries) -> list[str]:
    return [e.what for e in entries]


def test_r29_license_history_says_who_when_and_what(
    story: Story, app: LicenseManagement, vendor, clock: ManualClock
) -> None:
    admin = story.admin
    clock.advance(timedelta(hours=1))
    added_at = clock.now()
    pid = app.add_license_key(admin, issue(vendor, "3AB-C12-D34", owner="Acme"))
    clock.advance(timedelta(minutes=5))
    app.create_tag(admin, "Branch")
    app.assign_tag(admin, pid, "Branch")
    tagged_at = clock.now()
    history = app.history(admin, pid)
    # as it happened: added, then its pool made for it, which it joins (R29)
    assert whats(history) == ["LicenseAdded", "PoolCreated", "LicenseJoinedPool", "TagAssigned"]
    added, created, _, tagged = history
    assert (added.when, added.actor_name) == (added_at, "Administrator")
    assert added.details["public_id"] == "3AB-C12-D34"
    assert added.details["units"] == 10  # typed, not text
    assert added.details["subscription"] is False
    assert added.details["expires"] == "2027-06-30"
    assert created.details["group_name"] == "All"
    assert [e.position for e in history] == sorted(e.position for e in history)
    assert (tagged.when, tagged.actor_name) == (tagged_at, "Administrator")
    assert tagged.details["name"] == "Branch"
    assert all(e.when.tzinfo is not None and e.when.utcoffset() == timedelta(0) for e in history)
    assert all(e.target == f"license:{pid}" for e in history)


def test_r29_history_names_the_acting_branch_admin(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    pid = app.add_license_key(admin, issue(vendor, "3AB-C12-D34"))
    app.move_pools(admin, [pool_of(app, pid)], story.san_diego)
    app.create_tag(story.john, "Johns")
    app.assign_tag(story.john, pid, "Johns")
    last = app.history(story.john, pid)[-1]
    assert (last.what, last.actor_name) == ("TagAssigned", "John")


def test_r29_license_history_includes_its_pools_moves_tags_and_removal(
    story: Story, app: LicenseManagement, vendor, clock: ManualClock
) -> None:
    admin = story.admin
    pid = app.add_license_key(admin, issue(vendor, "3AB-C12-D34", owner="Acme"))
    sibling = app.add_license_key(admin, issue(vendor, "3AB-C12-D35", owner="Acme"))
    other = app.add_license_key(admin, issue(vendor, "9ZZ-000-001", owner="Globex"))
    pool_id = pool_of(app, pid)
    clock.advance(timedelta(days=1))
    app.move_pools(admin, [pool_id], story.san_diego)
    moved_at = clock.now()
    app.create_tag(admin, "Acme pool")
    app.assign_tag(story.john, pool_id, "Acme pool")
    app.create_tag(admin, "Sibling only")
    app.assign_tag(admin, sibling, "Sibling only")
    clock.advance(timedelta(days=1))
    app.remove_pools(admin, [pool_id], confirm=True)
    history = app.history(admin, pid)
    assert whats(history) == [
        "LicenseAdded",
        "PoolCreated",
        "LicenseJoinedPool",
        "PoolMoved",
        "TagAssigned",
        "TagUnassigned",  # the pool's tag comes off as it is removed
        "PoolRemoved",
        "LicenseRemoved",
    ]
    move = next(e for e in history if e.what == "PoolMoved")
    assert move.when == moved_at and move.actor_name == "Administrator"
    assert move.details["from_group"] == str(app.all_group)
    assert move.details["to_group"] == str(story.san_diego)
    assert (move.details["from_group_name"], move.details["to_group_name"]) == ("All", "San Diego")
    pool_tag = next(e for e in history if e.what == "TagAssigned")
    assert pool_tag.actor_name == "John" and pool_tag.details["target"] == f"pool:{pool_id}"
    assert "Sibling only" not in str([e.details for e in history])
    untag = next(e for e in history if e.what == "TagUnassigned")
    assert untag.details["target"] == f"pool:{pool_id}" and untag.when == clock.now()
    # another pool's life is not in this license's history
    assert whats(app.history(admin, other)) == ["LicenseAdded", "PoolCreated", "LicenseJoinedPool"]
    # a license joining a pool made before it does not take the pool's creation
    assert whats(app.history(admin, sibling))[:2] == ["LicenseAdded", "LicenseJoinedPool"]


def test_r29_pool_history_lists_creation_joins_moves_tags_and_removal(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "3AB-C12-D34", owner="Acme"))
    app.add_license_key(admin, issue(vendor, "3AB-C12-D35", owner="Acme"))
    pool_id = pool_of(app, a)
    app.move_pools(admin, [pool_id], story.tokyo)
    app.create_tag(admin, "Tokyo")
    app.assign_tag(admin, pool_id, "Tokyo")
    app.remove_pools(admin, [pool_id], confirm=True)
    history = app.history(admin, pool_id)
    assert whats(history) == [
        "PoolCreated",
        "LicenseJoinedPool",
        "LicenseJoinedPool",
        "PoolMoved",
        "TagAssigned",
        "TagUnassigned",
        "PoolRemoved",
    ]
    assert history[-1].details["public_ids"]  # the removal names the licenses it took
    assert all(e.actor_name == "Administrator" for e in history)
    positions = [e.position for e in history]
    assert positions == sorted(positions)


def test_r29_removed_objects_keep_their_history(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    pid = app.add_license_key(admin, issue(vendor, "3AB-C12-D34"))
    pool_id = pool_of(app, pid)
    app.move_pools(admin, [pool_id], story.san_diego)
    before_license = app.history(admin, pid)
    before_pool = app.history(admin, pool_id)
    app.remove_pools(admin, [pool_id], confirm=True)
    with pytest.raises(NotFound):
        app.license(admin, pid)
    after_license = app.history(admin, pid)
    after_pool = app.history(admin, pool_id)
    # nothing was rewritten or erased: the old entries are a prefix of the new ones
    assert after_license[: len(before_license)] == before_license
    assert after_pool[: len(before_pool)] == before_pool
    assert "LicenseRemoved" in whats(after_license)
    assert "PoolRemoved" in whats(after_pool)
    # whoever could see it where it was last still sees its history; others do not
    assert whats(app.history(story.john, pid)) == whats(after_license)
    with pytest.raises(NotFound):
        app.history(story.larry, pid)


def test_r29_a_re_added_license_keeps_its_earlier_life(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    key = issue(vendor, "3AB-C12-D34")
    pid = app.add_license_key(admin, key)
    app.remove_pools(admin, [pool_of(app, pid)], confirm=True)
    app.add_license_key(admin, key)
    history = whats(app.history(admin, pid))
    assert history.count("LicenseAdded") == 2
    assert history.index("LicenseRemoved") < len(history) - 1


def test_r29_refused_commands_leave_no_history(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    pid = app.add_license_key(admin, issue(vendor, "3AB-C12-D34"))
    pool_id = pool_of(app, pid)
    app.move_pools(admin, [pool_id], story.tokyo)
    app.create_tag(admin, "Nope")
    license_before, pool_before = app.history(admin, pid), app.history(admin, pool_id)
    before = recorded(app)
    with pytest.raises(PermissionDenied):
        app.assign_tag(story.makio, pid, "Nope")
    with pytest.raises(PermissionDenied):
        app.move_pools(story.makio, [pool_id], story.sydney)
    with pytest.raises(ConfirmationRequired):
        app.remove_pools(admin, [pool_id], confirm=False)
    with pytest.raises(NotFound):
        app.assign_tag(story.john, pool_id, "Nope")
    assert recorded(app) == before
    assert app.history(admin, pid) == license_before
    assert app.history(admin, pool_id) == pool_before


def test_r29_every_recorded_time_comes_from_the_applications_clock(
    story: Story, app: LicenseManagement, vendor, clock: ManualClock
) -> None:
    admin = story.admin
    times = []
    pid = app.add_license_key(admin, issue(vendor, "3AB-C12-D34"))
    times.append(clock.now())
    for days, group in ((3, story.san_diego), (40, story.sydney), (400, story.tokyo)):
        clock.advance(timedelta(days=days))
        app.move_pools(admin, [pool_of(app, pid)], group)
        times.append(clock.now())
    history = app.history(admin, pid)
    assert [e.when for e in history if e.what in ("LicenseAdded", "PoolMoved")] == times
    assert times[0] == START.astimezone(UTC)


def test_r29_history_survives_reopening_the_store(make_app, vendor, clock: ManualClock) -> None:
    first = make_app()
    pid = first.add_license_key(first.administrator, issue(vendor, "3AB-C12-D34"))
    clock.advance(timedelta(hours=2))
    group = first.create_group(first.administrator, "Branch")
    first.move_pools(first.administrator, [first.license(first.administrator, pid).pool_id], group)
    expected = first.history(first.administrator, pid)
    second = make_app()
    assert second.history(second.administrator, pid) == expected


def test_r29_history_stays_complete_as_events_keep_arriving(
    story: Story, app: LicenseManagement, vendor
) -> None:
    """The embedded read model indexes its audit log by target when a history is
    first asked for and extends the index afterwards: every later event must
    still show, in log order, exactly as a scan of the whole log finds them."""
    admin = story.admin
    pid = app.add_license_key(admin, issue(vendor, "3AB-C12-D34"))
    first = app.history(admin, pid)
    app.create_tag(admin, "Later")
    app.assign_tag(admin, pid, "Later")
    app.move_pools(admin, [pool_of(app, pid)], story.san_diego)
    second = app.history(admin, pid)
    assert second[: len(first)] == first
    assert whats(second[len(first) :]) == ["TagAssigned", "PoolMoved"]
    target = f"license:{pid}"
    rebuilt = SQLiteViews(":memory:")
    ViewUpdater(app._core.event_log, rebuilt).catch_up()
    # the index names the license's own events; the pool's creation with it is added (R29)
    own = [e.position for e in second if e.what != "PoolCreated"]
    assert own == rebuilt.history_positions(target)


# -- properties: history as it happened (R29) ------------------------------------------------


def _fresh_app() -> tuple[LicenseManagement, InMemoryActivationServer]:
    vendor = InMemoryActivationServer(clock=ManualClock(START))
    app = LicenseManagement(adapters=Adapters(activation_server=vendor, clock=vendor.clock))
    return app, vendor


@settings(max_examples=30, deadline=None)
@given(sequence=commands(max_size=20))
def test_r29_every_license_history_is_causal_and_typed(sequence: list) -> None:
    """Ordered by position, starting with the license's LicenseAdded, and every
    detail a JSON value that comes back the same, with its type."""
    app, vendor = _fresh_app()
    world = World(app, vendor)
    world.run_all(sequence)
    for pid in world.licenses:
        history = app.history(app.administrator, pid)
        positions = [e.position for e in history]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert history[0].what == "LicenseAdded"
        for e in history:
            assert json.loads(json.dumps(dict(e.details))) == dict(e.details)
            assert all(
                v is None or type(v) in (int, bool, str, float, list, dict)
                for v in e.details.values()
            )
        added = history[0].details
        assert type(added["units"]) is int and type(added["subscription"]) is bool
    app.close()


@settings(max_examples=30, deadline=None)
@given(sequence=commands(max_size=25))
def test_r29_a_branch_users_history_shows_nothing_outside_their_visibility(
    sequence: list,
) -> None:
    app, vendor = _fresh_app()
    world = World(app, vendor)
    world.run_all(sequence)
    d = app._core._directory()
    for user in world.users[1:]:
        visible = d.visible_groups(user)
        hidden = [g for g in d.groups if g not in visible]
        visible_names = {d.groups[g].name.casefold() for g in visible}
        hidden_names = {
            d.groups[g].name.casefold() for g in hidden
        } - visible_names  # a name both seen and hidden says nothing
        hidden_pools = {
            str(p.pool_id) for p in app.pools(app.administrator) if p.group not in visible
        }
        for pid in world.licenses + world.pools:
            try:
                history = app.history(user, pid)
            except NotFound:
                continue
            text = json.dumps([dict(e.details) for e in history])
            for g in hidden:
                assert str(g) not in text
            for p in hidden_pools:
                assert p not in text
            for e in history:
                for key, value in e.details.items():
                    if key.endswith("_name") and isinstance(value, str):
                        assert value.casefold() not in hidden_names, (e.what, key)
    app.close()


def test_r29_an_entry_names_its_actor_and_target_by_id_and_by_name(
    story: Story, app: LicenseManagement, vendor
) -> None:
    pid = app.add_license_key(story.admin, issue(vendor, "4AB-C12-D34", owner="Acme"))
    pool = pool_of(app, pid)
    app.move_pools(story.admin, [pool], story.san_diego)
    app.create_tag(story.admin, "Branch")
    app.assign_tag(story.john, pid, "Branch")
    added = app.history(story.admin, pid)[0]
    assert (added.actor, added.actor_name) == (str(story.admin), "Administrator")
    assert (added.target, added.target_name) == ("license:4AB-C12-D34", "4AB-C12-D34")
    tagged = app.history(story.john, pid)[-1]
    assert (tagged.actor, tagged.actor_name) == (str(story.john), "John")
    moved = next(e for e in app.history(story.admin, pool) if e.what == "PoolMoved")
    assert (moved.target, moved.target_name) == (f"pool:{pool}", "Acme")
