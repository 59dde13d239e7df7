"""R14 without leaks, and R33's escaped terminal output (issue 12).

An object outside the actor's visibility answers exactly as one that does not
exist, by the name given and never by id; registering hardware registered out
of sight is refused without naming it, and never reported as a success; the
demo acts as ``--as``. Text from outside (agents' failure reasons, names kept
by earlier versions) reaches the terminal with its control characters escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from esmc_licensing import (
    AlreadyExists,
    InMemoryActivationServer,
    LicenseManagement,
    NotFound,
    cli,
)
from esmc_licensing.adapters.memory import ManualClock
from esmc_licensing.domain.client_tasks import AgentResult, TaskOrder
from esmc_licensing.domain.events import Emitter, GroupCreated
from esmc_licensing.domain.ids import DIRECTORY_ID, GroupId
from esmc_licensing.testing import stores

from .cli_support import js, ok, refused
from .conftest import PRODUCT, branch_story, recorded
from .seats_support import add_license

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KEYS = {d.public_id: cli.demo_vendor(ManualClock()).key_of(d.public_id) for d in cli.DEMO_LICENSES}
FAKE = "\x1b[2J\x1b[31mFAKE"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "licenses.db"
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(
            cli.app,
            ["--store", str(store), *args],
            input=input,
            env={"COLUMNS": "250", "ESMC_LICENSING_USER": None, "ESMC_CONFIG": None},
        )

    ok(invoke("demo"))
    return invoke


# -- the library --------------------------------------------------------------------------


def test_r14_invisible_group_by_name_answers_as_a_nonexistent_one(app: LicenseManagement) -> None:
    story = branch_story(app)
    with pytest.raises(NotFound) as invisible:
        app.visible_group_named(story.john, "Sydney")
    with pytest.raises(NotFound) as missing:
        app.visible_group_named(story.john, "Atlantis")
    assert str(invisible.value) == "static group Sydney not found"
    assert str(missing.value) == "static group Atlantis not found"
    assert str(story.sydney) not in str(invisible.value)
    # by id: the same answer as for an id that exists nowhere
    nowhere = GroupId.derive("nowhere")
    with pytest.raises(NotFound) as by_id:
        app.visible_group_named(story.john, str(story.sydney))
    with pytest.raises(NotFound) as none_by_id:
        app.visible_group_named(story.john, str(nowhere))
    assert str(by_id.value).replace(str(story.sydney), "ID") == str(none_by_id.value).replace(
        str(nowhere), "ID"
    )
    assert app.visible_group_named(story.john, "san diego") == story.san_diego
    assert app.visible_group_named(story.admin, "Sydney") == story.sydney


def test_r14_fingerprint_registered_out_of_sight_is_refused_without_naming_it(
    app: LicenseManagement,
) -> None:
    story = branch_story(app)
    hidden = app.register_computer(
        story.admin, "sydney-pc", story.sydney, fingerprint="fp-sydney", products=[PRODUCT]
    )
    before = recorded(app)
    with pytest.raises(AlreadyExists) as caught:
        app.register_computer(
            story.john, "laptop", story.san_diego, fingerprint="fp-sydney", products=[PRODUCT]
        )
    message = str(caught.value)
    for leak in ("Sydney", "sydney-pc", str(hidden), str(story.sydney)):
        assert leak not in message
    assert "nothing was recorded" in message
    assert recorded(app) == before
    # who can see it gets the same computer back, as R20 says
    assert (
        app.register_computer(story.admin, "sydney-pc", story.sydney, fingerprint="fp-sydney")
        == hidden
    )


# -- the command line -------------------------------------------------------------------------


def test_r14_cli_invisible_group_is_not_found_by_name_without_its_id(run) -> None:  # type: ignore[no-untyped-def]
    invisible = refused(
        run(
            "--as",
            "John",
            "register-computer",
            "laptop",
            "--group",
            "Sydney",
            "--fingerprint",
            "fp-1",
        ),
        1,
    )
    missing = refused(
        run(
            "--as",
            "John",
            "register-computer",
            "laptop",
            "--group",
            "Atlantis",
            "--fingerprint",
            "fp-1",
        ),
        1,
    )
    assert invisible == missing.replace("Atlantis", "Sydney")
    assert not UUID.search(invisible)
    for args in (
        ("delete-not-connecting", "{}", "--days", "30"),
        ("move", "Acme Corp", "--to", "{}"),
    ):
        a = refused(run("--as", "John", *(x.format("Sydney") for x in args)), 1)
        b = refused(run("--as", "John", *(x.format("Atlantis") for x in args)), 1)
        assert a == b.replace("Atlantis", "Sydney") and not UUID.search(a)


def test_r14_cli_register_computer_never_reports_success_for_nothing_recorded(run) -> None:  # type: ignore[no-untyped-def]
    ok(run("register-computer", "sydney-pc", "--group", "Sydney", "--fingerprint", "fp-syd"))
    err = refused(
        run(
            "--as",
            "John",
            "register-computer",
            "laptop",
            "--group",
            "San Diego",
            "--fingerprint",
            "fp-syd",
        ),
        1,
        "already registered",
    )
    assert "Sydney" not in err and "sydney-pc" not in err and not UUID.search(err)
    assert js(run("--as", "John", "computers", "--json")) == []
    # a visible computer registered again: said so, truthfully, not "Registered"
    again = ok(
        run("register-computer", "other-name", "--group", "San Diego", "--fingerprint", "fp-syd")
    )
    assert "Registered" not in again.stdout
    assert "Nothing recorded" in again.stdout and "sydney-pc" in again.stdout
    data = js(
        run("register-computer", "x", "--group", "Sydney", "--fingerprint", "fp-syd", "--json")
    )
    assert data["registered"] is False  # type: ignore[index]


def test_r14_demo_acts_as_the_given_user(run) -> None:  # type: ignore[no-untyped-def]
    before = js(run("history", "DMO-SDG-001", "--json"))
    err = refused(run("--as", "Makio", "demo"), 1, "administrator")
    assert "Traceback" not in err
    assert js(run("history", "DMO-SDG-001", "--json")) == before
    refused(run("--as", "Nobody", "demo"), 2, "no such user")


# -- R33 on the terminal ------------------------------------------------------------------------


class LaterAgents:
    def __init__(self) -> None:
        self.delivered: list[TaskOrder] = []

    def immediate_results(self, orders: Sequence[TaskOrder]) -> list[AgentResult]:
        return []

    def deliver(self, orders: Sequence[TaskOrder]) -> None:
        self.delivered.extend(orders)


def test_r33_a_failure_reason_from_an_agent_is_printed_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "licenses.db"
    vendor = InMemoryActivationServer(clock=ManualClock(datetime(2026, 1, 1, tzinfo=UTC)))
    from esmc_licensing import Adapters

    app = LicenseManagement(
        env=stores.sqlite_env(db),
        adapters=Adapters(
            activation_server=vendor,
            agents=LaterAgents(),  # type: ignore[arg-type]
            clock=ManualClock(datetime(2026, 1, 1, tzinfo=UTC)),
        ),
    )
    story = branch_story(app)
    pid = add_license(app, vendor, "AAA-BBB-CCC", group=story.sydney)
    cid = app.register_computer(
        story.admin, "pc", story.sydney, fingerprint="fp", products=[PRODUCT]
    )
    task = app.run_product_activation(story.larry, pid, [cid])
    assert app.record_task_result(task, cid, succeeded=False, reason=FAKE + "\u202eevil")
    app.close()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli.app, ["--store", str(db), "--as", "Larry", "task", str(task)], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b[2J\\x1b[31mFAKE" in result.stdout and "\\u202eevil" in result.stdout
    as_json = CliRunner().invoke(
        cli.app, ["--store", str(db), "--as", "Larry", "task", str(task), "--json"]
    )
    assert "\x1b" not in as_json.stdout and "\u202e" not in as_json.stdout
    assert as_json.exit_code == 0, as_json.output
    assert FAKE + "\u202eevil" in _strings(json.loads(as_json.stdout))  # the same data


def _strings(data: object) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return []


def test_r33_names_stored_before_the_rule_are_printed_escaped(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    app = LicenseManagement(env=stores.sqlite_env(db))
    emit = Emitter(
        DIRECTORY_ID, app._core._directory().version, datetime(2026, 1, 1, tzinfo=UTC), "system"
    )
    emit(GroupCreated, group=GroupId.derive("old"), name="[/x]" + FAKE, parent=app.all_group)
    app._core._save_events(emit.events)
    pools = app.pools(app.administrator)
    app.close()
    assert pools == []
    runner = CliRunner()
    # the group is named on the command line by its id; its name comes back escaped
    result = runner.invoke(
        cli.app,
        [
            "--store",
            str(db),
            "register-computer",
            "pc",
            "--group",
            str(GroupId.derive("old")),
            "--unmanaged",
        ],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    listed = runner.invoke(cli.app, ["--store", str(db), "computers"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert "\x1b" not in listed.stdout
    assert "[/x]\\x1b[2J\\x1b[31mFAKE" in listed.stdout  # markup shown, not obeyed
    error = runner.invoke(cli.app, ["--store", str(db), "tag", "delete", FAKE])
    assert error.exit_code == 1 and "\x1b" not in error.stderr and "\\x1b" in error.stderr
