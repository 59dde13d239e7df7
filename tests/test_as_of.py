"""R30: replay "as of" a past moment, for one license, from its own events.

``license(actor, pid, as_of=t)`` replays only the events the audit index
lists for that license, the pools it has been in and the directory; it must
answer exactly what a replay of the whole log answers for that license at
t, for every position and moment, visible or not (R14).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings

from esmc_licensing import (
    AccountKind,
    Adapters,
    Credentials,
    InMemoryAccounts,
    InMemoryActivationServer,
    InMemoryAgents,
    InvalidInput,
    LicenseFilter,
    LicenseManagement,
    ManualClock,
    NotFound,
    Permission,
    PermissionDenied,
    StatusLevel,
)
from esmc_licensing.testing.strategies import World, commands

from .conftest import PRODUCT, START, AppFactory, issue

ELA = Credentials("legacy-admin", "ela-Passw0rd!")


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


def test_r30_accounts_as_they_were(
    make_app: AppFactory, vendor: InMemoryActivationServer, clock: ManualClock
) -> None:
    accounts = InMemoryAccounts(vendor)
    app = make_app(accounts=accounts)
    admin = app.administrator
    issue(vendor, "ACM-000-001", owner="")
    accounts.add_ela_account(ELA, ["ACM-000-001"])
    before = app.position
    clock.advance(timedelta(hours=1))
    app.connect_account(admin, AccountKind.ELA, ELA)
    connected = app.position
    clock.advance(timedelta(hours=1))
    app.disconnect_account(admin, AccountKind.ELA, ELA.username)
    assert app.accounts(admin, as_of=before) == []
    [then] = app.accounts(admin, as_of=connected)
    assert (then.username, then.connected, then.last_synced) == (ELA.username, True, clock.now()
                                                                 - timedelta(hours=1))
    assert app.accounts(admin, as_of=clock.now() - timedelta(minutes=1)) == [then]
    [now] = app.accounts(admin)
    assert not now.connected and app.accounts(admin, as_of=app.position) == [now]
    # the same rights as then: a branch user is refused, as they are now
    user = app.create_user(admin, "Branch", app.create_group(admin, "Branch"))
    with pytest.raises(PermissionDenied):
        app.accounts(user, as_of=app.position)
    with pytest.raises(NotFound):  # the user did not exist yet
        app.accounts(user, as_of=connected)


def test_r30_accounts_on_the_command_line_take_as_of(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from esmc_licensing import cli

    from .cli_support import js, ok

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli.app, ["--store", str(tmp_path / "s.db"), *args],
                             env={"ESMC_LICENSING_STORE": None, "ESMC_SEAL_KEY": None,
                                  "ESMC_LICENSING_USER": None, "COLUMNS": "200"})

    ok(run("demo"))
    shown = ok(run("accounts", "--as-of", "2000-01-01"))
    assert "Nothing was recorded before 2000-01-01" in shown.stdout
    assert js(run("accounts", "--as-of", "0", "--json")) == []
    assert js(run("accounts", "--as-of", "3", "--json")) == js(run("accounts", "--json")) == []


def test_r30_groups_and_users_as_they_were(make_app: AppFactory) -> None:
    app = make_app()
    admin = app.administrator
    sd = app.create_group(admin, "San Diego")
    before = app.position
    john = app.create_user(admin, "John", sd)
    app.grant(admin, john, sd, Permission.WRITE)
    created = app.position - 1  # John, before his grant
    app.create_group(admin, "Sydney")
    assert [g.path for g in app.groups(admin, as_of=before)] == ["All", "All/San Diego"]
    assert [g.path for g in app.groups(admin)] == ["All", "All/San Diego", "All/Sydney"]
    assert [u.name for u in app.users(admin, as_of=before)] == ["Administrator"]
    then = {u.name: u for u in app.users(admin, as_of=created)}
    assert then["John"].grants == {}
    assert {u.name: u for u in app.users(admin)}["John"].grants == {sd: Permission.WRITE}
    assert [g.path for g in app.groups(john, as_of=app.position)] == ["All/San Diego"]
    with pytest.raises(NotFound):  # John did not exist yet
        app.groups(john, as_of=before)


def test_r30_the_tag_catalogue_as_it_was(make_app: AppFactory, clock) -> None:
    app = make_app()
    admin = app.administrator
    start = app.position
    app.create_tag(admin, "Renewal")
    app.create_tag(admin, "VIP")
    both = app.position
    app.delete_tag(admin, "Renewal")
    clock.advance(timedelta(days=1))
    app.create_tag(admin, "Audit 2026")
    assert app.tags(admin, as_of=start) == []
    assert app.tags(admin, as_of=both) == ["Renewal", "VIP"]
    assert app.tags(admin, as_of=both + 1) == ["VIP"]
    assert app.tags(admin, as_of=clock.now() - timedelta(hours=1)) == ["VIP"]
    assert app.tags(admin, as_of=app.position) == app.tags(admin) == ["Audit 2026", "VIP"]
    john = app.create_user(admin, "John", app.all_group)
    with pytest.raises(NotFound):  # John did not exist yet
        app.tags(john, as_of=both)
    with pytest.raises(InvalidInput):
        app.tags(admin, as_of=-1)


def test_r30_every_query_on_the_command_line_takes_as_of(tmp_path, monkeypatch) -> None:
    """Groups, users, permissions and accounts too: before the first event,
    "nothing was recorded before …"; at the end, what they answer now."""
    from typer.testing import CliRunner

    from esmc_licensing import cli

    from .cli_support import js, ok

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli.app, ["--store", str(tmp_path / "s.db"), *args],
                             env={"ESMC_LICENSING_STORE": None, "ESMC_SEAL_KEY": None,
                                  "ESMC_LICENSING_USER": None, "COLUMNS": "200"})

    ok(run("demo"))
    end = str(js(run("history", "DMO-SDG-001", "--json"))[-1]["position"])  # type: ignore[index]
    ok(run("tag", "create", "Renewal"))
    for query in (["groups"], ["users"], ["permissions", "John"], ["accounts"],
                  ["tag", "list"]):
        shown = ok(run(*query, "--as-of", "2000-01-01"))
        assert "Nothing was recorded before 2000-01-01" in shown.stdout, query
        at = js(run(*query, "--as-of", "999999", "--json"))
        assert at == js(run(*query, "--json")), query
    assert js(run("tag", "list", "--as-of", end, "--json")) == []
    assert js(run("tag", "list", "--json")) == ["Renewal"]
    exported = [json.loads(line) for line in ok(run("audit", "export")).stdout.splitlines()]
    first = str(next(e["position"] for e in exported if e["what"] == "DirectoryInitialised"))
    assert js(run("groups", "--as-of", first, "--json")) == [
        {"group_id": js(run("groups", "--json"))[0]["group_id"],  # type: ignore[index]
         "name": "All", "path": "All", "parent": None}]
    assert "John" not in ok(run("users", "--as-of", first)).stdout
    assert "John" in ok(run("users", "--as-of", end)).stdout


def test_r30_history_takes_since_until_and_as_of(
    make_app: AppFactory, vendor: InMemoryActivationServer, clock: ManualClock
) -> None:
    app = make_app(agents=InMemoryAgents())
    admin = app.administrator
    pid = app.add_license_key(admin, issue(vendor, "HIS-000-001"))
    added = app.position
    clock.advance(timedelta(days=1))
    middle = clock.now()
    group = app.create_group(admin, "Lab")
    pool = app.license(admin, pid).pool_id
    app.move_pools(admin, [pool], group)
    pc = app.register_computer(admin, "pc-1", group, fingerprint="hw-1", products=[PRODUCT])
    clock.advance(timedelta(days=1))
    app.run_product_activation(admin, pid, [pc])
    whole = app.history(admin, pid)
    assert [e.position for e in app.history(admin, pid, as_of=added)] == [
        e.position for e in whole if e.position <= added]
    assert app.history(admin, pid, since=middle) == [e for e in whole if e.when >= middle]
    assert app.history(admin, pid, until=middle - timedelta(seconds=1)) == [
        e for e in whole if e.when < middle]
    assert app.history(admin, pool, since=added + 1, until=app.position) == [
        e for e in app.history(admin, pool) if e.position > added]
    assert app.history(admin, pc, as_of=middle - timedelta(seconds=1)) == []
    assert app.history(admin, pc) and app.history(admin, pc, as_of=app.position) == app.history(
        admin, pc)
    user = app.create_user(admin, "Late", group)
    app.grant(admin, user, group, Permission.READ)
    with pytest.raises(NotFound):  # not there yet at that moment
        app.history(user, pid, as_of=added)
    for bad in ({"as_of": middle.replace(tzinfo=None)}, {"since": "yesterday"},
                {"until": True}):
        with pytest.raises(InvalidInput):
            app.history(admin, pid, **bad)  # type: ignore[arg-type]
