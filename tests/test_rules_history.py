"""R29: every change is an event with who, when and what; nothing is erased."""

from __future__ import annotations

import json
from datetime import UTC, date, timedelta

import pytest
from hypothesis import given, settings

from esmc_licensing import (
    Adapters,
    ConfirmationRequired,
    InMemoryActivationServer,
    InMemoryAgents,
    LicenseManagement,
    ManualClock,
    NotFound,
    PermissionDenied,
)
from esmc_licensing.cli import to_jsonable
from esmc_licensing.commands.history import may_audit
from esmc_licensing.projections.runner import ViewUpdater
from esmc_licensing.projections.tables import SQLiteViews
from esmc_licensing.testing import stores
from esmc_licensing.testing.strategies import World, commands

from .conftest import PRODUCT, START, Story, branch_story, issue, pool_of, recorded


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
            # through JSON and back, and through history --json, each value keeps its
            # type (1 == True == 1.0 in Python: the types are compared too)
            assert _typed(json.loads(json.dumps(dict(e.details)))) == _typed(dict(e.details))
            shown = json.loads(json.dumps(to_jsonable(e)))
            assert _typed(shown["details"]) == _typed(dict(e.details))
            assert shown["position"] == e.position and shown["what"] == e.what
            assert all(
                v is None or type(v) in (int, bool, str, float, list, dict)
                for v in e.details.values()
            )
        added = history[0].details
        assert type(added["units"]) is int and type(added["subscription"]) is bool
        assert added["expires"] is None or date.fromisoformat(added["expires"])
    app.close()


def _typed(value: object) -> object:
    """A JSON value with the type of every part beside it."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def _where_last(app: LicenseManagement, world: World) -> tuple[dict, dict]:
    """Each pool's and license's group as the views hold it now (or last, removed)."""
    app._core._refresh()  # the views caught up with the log
    views = app._core.views
    pools = {str(p): views.state("pool", str(p)) for p in world.pools}
    pool_group = {p: s.group for p, s in pools.items() if s is not None}
    license_group = {}
    for pid in world.licenses:
        lic = views.state("license", str(pid))
        if lic is not None and lic.pool_id is not None:
            license_group[str(pid)] = pool_group.get(str(lic.pool_id))
    return pool_group, license_group


@settings(max_examples=30, deadline=None)
@given(sequence=commands(max_size=25))
def test_r29_a_branch_users_history_and_export_show_nothing_outside_their_visibility(
    sequence: list,
) -> None:
    """No id or name of a group, pool or license outside the reader's visibility
    (R14) in any history they may read -- in its targets, names or details --
    and the audit log only for those who see everything (R31)."""
    app, vendor = _fresh_app()
    world = World(app, vendor)
    world.run_all(sequence)
    d = app._core._directory()
    pool_group, license_group = _where_last(app, world)
    pool_names = {p: app._core.views.state("pool", p).name for p in pool_group}
    for user in world.users[1:]:
        visible = d.visible_groups(user)
        if may_audit(d, user):
            assert visible == set(d.groups)  # READ on All: nothing is outside
            assert [e.position for e in app.audit_log(user)] == list(
                range(1, recorded(app) + 1))
        else:
            with pytest.raises(PermissionDenied):
                app.audit_log(user)
        hidden_groups = [g for g in d.groups if g not in visible]
        seen_names = {d.groups[g].name.casefold() for g in visible} | {
            pool_names[p].casefold() for p, g in pool_group.items() if g in visible}
        hidden_names = ({d.groups[g].name.casefold() for g in hidden_groups} | {
            pool_names[p].casefold() for p, g in pool_group.items() if g not in visible
        }) - seen_names  # a name both seen and hidden says nothing
        hidden_ids = {str(g) for g in hidden_groups} | {
            p for p, g in pool_group.items() if g not in visible} | {
            pid for pid, g in license_group.items() if g not in visible}
        for target in world.licenses + world.pools:
            try:
                history = app.history(user, target)
            except NotFound:
                continue
            for e in history:
                text = json.dumps([e.target, dict(e.details)])
                assert not [x for x in hidden_ids if x in text], (e.what, text)
                names = [e.target_name] + [
                    v for k, v in e.details.items() if k.endswith("_name") or k == "name"]
                for name in names:
                    if isinstance(name, str) and e.what != "TagAssigned":
                        assert name.casefold() not in hidden_names, (e.what, name)
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


# -- names as they were then; nothing the reader cannot see; no secret (R29) ------------------


def _renamed_story(app: LicenseManagement, vendor, story: Story):
    """A computer removed and registered again (same hardware) under another name
    and group, and a pool removed and made again for its owner written otherwise."""
    admin = story.admin
    pid = app.add_license_key(admin, issue(vendor, "NAM-000-001", owner="Acme"))
    pool = pool_of(app, pid)
    pc = app.register_computer(admin, "pc-old", story.sydney, fingerprint="hw-1",
                               products=[PRODUCT])
    app.run_product_activation(admin, pid, [pc])
    app.remove_computer(admin, pc, deactivate=True)
    again = app.register_computer(admin, "pc-new", story.san_diego, fingerprint="hw-1",
                                  products=[PRODUCT])
    assert again == pc  # the same hardware: the same computer, a new life
    app.run_product_activation(admin, pid, [pc])
    app.remove_pools(admin, [pool], confirm=True)
    second = app.add_license_key(admin, issue(vendor, "NAM-000-002", owner="ACME"))
    assert pool_of(app, second) == pool  # the same owner: the same pool, a new name
    return pid, second, pool, pc


def _named(entries, what: str, key: str) -> list:
    return [e.details[key] for e in entries if e.what == what]


def test_r29_names_are_as_they_were_at_each_entry(
    make_app, vendor, clock: ManualClock
) -> None:
    app = make_app(agents=InMemoryAgents())
    story = branch_story(app)
    pid, second, pool, pc = _renamed_story(app, vendor, story)
    admin = story.admin
    first_life = app.history(admin, pid)
    assert _named(first_life, "ProductActivated", "computer_name") == ["pc-old", "pc-new"]
    assert _named(first_life, "LicenseAdded", "pool_name") == ["Acme"]
    # removed with its pool, after the pool's removal: still the name it had
    assert _named(first_life, "LicenseRemoved", "pool_name") == ["Acme"]
    # added before the pool made for it joins it: the name of the pool made then
    assert _named(app.history(admin, second), "LicenseAdded", "pool_name") == ["ACME"]
    pool_history = app.history(admin, pool)
    assert [(e.what, e.target_name) for e in pool_history if e.what == "PoolCreated"] == [
        ("PoolCreated", "Acme"), ("PoolCreated", "ACME")]
    assert {e.target_name for e in pool_history if e.what == "PoolRemoved"} == {"Acme"}
    computer_history = app.history(admin, pc)
    registered = [e for e in computer_history if e.what == "ComputerRegistered"]
    assert [e.target_name for e in registered] == ["pc-old", "pc-new"]
    before = [e.target_name for e in computer_history if e.position < registered[1].position]
    assert set(before) == {"pc-old"}
    # the audit log says the same, from the start or from the middle
    log = list(app.audit_log(admin))
    by_position = {e.position: e for e in log}
    for e in [*first_life, *pool_history, *computer_history]:
        assert by_position[e.position].details == e.details or e.target != by_position[
            e.position].target, e
    middle = registered[1].position - 1
    tail = {e.position: e for e in app.audit_log(admin, since=middle)}
    for position, e in tail.items():
        assert (e.details, e.target_name) == (by_position[position].details,
                                              by_position[position].target_name)


def test_r29_names_then_in_history_json_and_the_table(tmp_path, monkeypatch) -> None:
    """The command line shows the name a pool had at each entry, in the table
    and in --json."""
    from typer.testing import CliRunner

    from esmc_licensing import cli

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "s.db"
    vendor = cli.demo_vendor(ManualClock(START))
    env = {**stores.sqlite_env(store)}
    app = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor,
                                                       clock=vendor.clock))
    admin = app.administrator
    pid = app.add_license_key(admin, issue(vendor, "NAM-000-001", owner="Acme"))
    pool = pool_of(app, pid)
    app.remove_pools(admin, [pool], confirm=True)
    app.add_license_key(admin, issue(vendor, "NAM-000-002", owner="ACME"))
    app.close()
    runner = CliRunner()
    run_env = {"ESMC_LICENSING_STORE": None, "ESMC_LICENSING_USER": None, "COLUMNS": "250",
               "ESMC_DATA_KEY": stores.TEST_DATA_KEY, "ESMC_SEAL_KEY": None}
    shown = runner.invoke(cli.app, ["--store", str(store), "history", str(pool), "--json"],
                          env=run_env)
    assert shown.exit_code == 0, shown.output
    entries = json.loads(shown.stdout)
    assert [e["target_name"] for e in entries if e["what"] == "PoolCreated"] == ["Acme", "ACME"]
    table = runner.invoke(cli.app, ["--store", str(store), "history", "NAM-000-001"],
                          env=run_env)
    assert table.exit_code == 0, table.output
    assert "Acme" in table.stdout and "ACME" not in table.stdout


def test_r29_a_branch_user_sees_no_other_groups_computer_or_license(
    make_app, vendor
) -> None:
    """The issue's case: a license's history showed a computer of another group."""
    app = make_app(agents=InMemoryAgents())
    story = branch_story(app)
    admin = story.admin
    mine = app.add_license_key(admin, issue(vendor, "VIS-000-001", owner="Mine"))
    theirs = app.add_license_key(admin, issue(vendor, "VIS-000-002", owner="Theirs"))
    app.move_pools(admin, [pool_of(app, mine)], story.san_diego)
    app.move_pools(admin, [pool_of(app, theirs)], story.tokyo)
    far = app.register_computer(admin, "tokyo-pc", story.tokyo, fingerprint="hw-t",
                                products=[PRODUCT])
    near = app.register_computer(admin, "sd-pc", story.san_diego, fingerprint="hw-s",
                                 products=[PRODUCT])
    app.run_product_activation(admin, mine, [far])
    app.run_product_activation(admin, theirs, [near])
    secrets = {str(far), "tokyo-pc", "VIS-000-002", str(pool_of(app, theirs)), "Theirs",
               str(story.tokyo), "Tokyo"}
    for target in (mine, near, pool_of(app, mine)):
        entries = app.history(story.john, target)
        text = json.dumps([[e.target, e.target_name, dict(e.details)] for e in entries])
        assert not [s for s in secrets if s in text], (target, text)
    # the Administrator sees them all, by name
    activated = [e for e in app.history(admin, mine) if e.what == "ProductActivated"]
    assert [(e.details["computer_id"], e.details["computer_name"]) for e in activated] == [
        (str(far), "tokyo-pc")]
    hidden = [e for e in app.history(story.john, mine) if e.what == "ProductActivated"]
    assert [(e.details["computer_id"], e.details["computer_name"]) for e in hidden] == [
        (None, None)]


def test_r29_the_console_token_is_hidden_in_history_and_export(
    app: LicenseManagement, tmp_path, monkeypatch
) -> None:
    token = app.console_token
    entries = list(app.audit_log(app.administrator))
    initialised = next(e for e in entries if e.what == "DirectoryInitialised")
    assert initialised.details["console_token"] == "(hidden)"
    assert token not in json.dumps([[e.target_name, dict(e.details)] for e in entries])


def test_r29_the_console_token_is_not_in_audit_export(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from esmc_licensing import cli

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"ESMC_LICENSING_STORE": None, "ESMC_LICENSING_USER": None, "ESMC_SEAL_KEY": None,
           "COLUMNS": "200"}

    def run(*args: str):
        result = runner.invoke(cli.app, ["--store", str(tmp_path / "s.db"), *args], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    run("demo")
    token = json.loads(run("info", "--json"))["console_token"]
    for fmt in ("jsonl", "csv"):
        out = run("audit", "export", "--format", fmt)
        assert "DirectoryInitialised" in out and "(hidden)" in out
        assert token not in out
