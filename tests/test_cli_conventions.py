"""The conventions of mature command-line tools (api.md "Command line", issue 13).

Global options before or after the command, ``--json`` on every command (those
that change things print what they created or changed, with ids), ``--limit``
on lists, paging on a terminal only, tables that fit 80 columns without cutting
an id, a date or a state, confirmation and ``--dry-run`` on the bulk
destructive commands, ``filter delete`` and ``keygen``.
"""

from __future__ import annotations

import base64
import json
import re
import stat
import sys
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from esmc_licensing import cli
from esmc_licensing.adapters.memory import ManualClock
from esmc_licensing.keyring import read_key_file

from .cli_support import js, ok, refused

Run = Callable[..., Result]

CLEAN_ENV: dict[str, str | None] = {
    name: None for name in (
        "ESMC_LICENSING_STORE", "ESMC_LICENSING_USER", "ESMC_CONFIG", "ESMC_CREDENTIALS_FILE",
        "ESMC_ACTIVATION_URL", "ESMC_ACCOUNTS_URL", "ESMC_EMA2_URL", "ESMC_EBA_URL",
        "ESMC_ELA_URL", "ESMC_VENDOR_PUBLIC_KEY", "ESMC_SEAL_KEY", "PAGER",
    )
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "licenses.db"


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """The CLI with no --store given (each test puts it where it wants)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, columns: int = 200,
               env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli.app, list(args), input=input,
                             env={**CLEAN_ENV, "COLUMNS": str(columns), **(env or {})})

    return invoke


@pytest.fixture
def run(bare: Run, store: Path) -> Run:
    def invoke(*args: str, **kwargs: Any) -> Result:
        return bare("--store", str(store), *args, **kwargs)

    return invoke


@pytest.fixture
def demo(run: Run) -> Run:
    ok(run("demo"))
    return run


def _events(run: Run) -> list[str]:
    """Every recorded event (the audit log), to show that nothing was recorded."""
    return ok(run("audit", "export")).stdout.splitlines()


# -- global options before or after the command -------------------------------------------------


def test_global_options_before_or_after_the_command(bare: Run, store: Path) -> None:
    ok(bare("--store", str(store), "demo"))
    before = js(bare("--store", str(store), "--as", "John", "--json", "licenses"))
    after = js(bare("licenses", "--store", str(store), "--as", "John", "--json"))
    mixed = js(bare("--json", "licenses", "--as", "John", "--store", str(store)))
    assert before == after == mixed
    assert {row["public_id"] for row in after} == {"DMO-SDG-001", "DMO-SDG-002"}  # type: ignore[union-attr]
    # in a command group too, and an option's value is never taken for an option
    ok(bare("tag", "create", "--store", str(store), "--as", "Administrator", "--", "--as"))
    assert js(bare("tag", "list", "--json", "--store", str(store))) == ["--as"]
    # after the command, the option wins over the one before it
    other = store.with_name("other.db")
    ok(bare("--store", str(other), "create-group", "Lab", "--store", str(store)))
    assert not other.exists()
    assert "All/Lab" in ok(bare("groups", "--store", str(store))).stdout
    refused(bare("licenses", "--store", str(store), "--as", "Nobody"), 2, "--as 'Nobody'")


def test_global_options_are_in_every_commands_help(bare: Run) -> None:
    for path in _command_paths():
        text = ok(bare(*path, "--help", columns=200)).stdout
        for option in ("--store", "--as", "--json", "--quiet", "--debug", "--no-pager"):
            assert option in text, (path, option)


def _command_paths() -> Iterator[tuple[str, ...]]:
    root = typer.main.get_command(cli.app)

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        subcommands = getattr(command, "commands", None)
        if path:
            yield path
        for name, sub in sorted((subcommands or {}).items()):
            yield from walk(sub, (*path, name))

    yield from walk(root, ())


# -- --json on every command ------------------------------------------------------------------


def test_every_command_takes_json(bare: Run) -> None:
    root = typer.main.get_command(cli.app)
    for path in _command_paths():
        command: Any = root
        for name in path:
            command = command.commands[name]
        options = {o for p in command.params for o in getattr(p, "opts", ())}
        assert "--json" in options or hasattr(command, "commands"), path


def test_commands_that_change_things_print_what_they_did_as_json(demo: Run) -> None:
    group = js(demo("create-group", "Lab", "--parent", "All/San Diego", "--json"))
    assert set(group) == {"group_id", "name", "path"}  # type: ignore[arg-type]
    assert group["name"] == "Lab" and group["path"] == "All/San Diego/Lab"  # type: ignore[index]
    listed = js(demo("groups", "--json"))
    assert {"group_id": group["group_id"], "path": "All/San Diego/Lab"}.items() <= next(  # type: ignore[index]
        g for g in listed if g["name"] == "Lab").items()  # type: ignore[union-attr]
    user = js(demo("--json", "create-user", "Greta", "--home", "Lab"))
    assert user["name"] == "Greta" and user["home_group_id"] == group["group_id"]  # type: ignore[index]
    granted = js(demo("grant", "Greta", "Lab", "WRITE", "--json"))
    assert granted == {"user": "Greta", "user_id": user["user_id"],  # type: ignore[index]
                       "group": "All/San Diego/Lab", "group_id": group["group_id"],  # type: ignore[index]
                       "permission": "WRITE"}
    revoked = js(demo("revoke", "Greta", "Lab", "--json"))
    assert revoked["revoked"] == "WRITE"  # type: ignore[index]
    assert js(demo("tag", "create", "audit", "--json")) == {"tag": "audit"}
    assert js(demo("tag", "assign", "DMO-SDG-001", "audit", "--json")) == {
        "public_id": "DMO-SDG-001", "tag": "audit"}
    pool = js(demo("tag", "assign", "Acme Corp", "audit", "--json"))
    assert set(pool) == {"pool_id", "tag"}  # type: ignore[arg-type]
    saved = js(demo("save-filter", "bad", "--level", "error", "--json"))
    assert saved["name"] == "bad" and saved["filter"]["levels"] == ["ERROR"]  # type: ignore[index]
    moved = js(demo("move", "Acme Corp", "--to", "Lab", "--json"))
    assert moved["moved"] == [pool["pool_id"]] and moved["to_group"] == "All/San Diego/Lab"  # type: ignore[index]
    computer = js(demo("register-computer", "pc-1", "--group", "Lab", "--fingerprint", "f1",
                       "--json"))
    assert computer["registered"] is True  # type: ignore[index]
    # --quiet silences the sentences, not the JSON
    assert js(demo("--quiet", "tag", "unassign", "DMO-SDG-001", "audit", "--json")) == {
        "public_id": "DMO-SDG-001", "tag": "audit"}
    assert ok(demo("--quiet", "tag", "assign", "DMO-SDG-001", "audit")).stdout == ""


# -- --limit and the pager --------------------------------------------------------------------


def test_limit_on_lists(demo: Run) -> None:
    everything = js(demo("licenses", "--json"))
    assert isinstance(everything, list) and len(everything) == 6
    assert js(demo("licenses", "--json", "--limit", "2")) == everything[:2]
    table = ok(demo("licenses", "--limit", "2")).stdout
    assert "Showing the first 2 of 6" in table
    assert everything[2]["public_id"] not in table
    for command in (("pools",), ("groups",), ("users",), ("history", "DMO-SDG-001"),
                    ("permissions", "John"), ("filters",), ("computers",), ("tag", "list"),
                    ("accounts",), ("alerts",)):
        assert len(js(demo(*command, "--json", "--limit", "1"))) <= 1, command  # type: ignore[arg-type]
    assert demo("licenses", "--limit", "0").exit_code == 2


@pytest.fixture
def pager_log(tmp_path: Path) -> tuple[str, Path]:
    """A pager that records what it was given."""
    log = tmp_path / "paged.txt"
    script = tmp_path / "pager.py"
    script.write_text(f"import sys; open({str(log)!r}, 'w').write(sys.stdin.read())\n")
    return f"{sys.executable} {script}", log


def test_long_answers_are_paged_on_a_terminal_only(
        demo: Run, pager_log: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    pager, log = pager_log
    short = {"PAGER": pager, "LINES": "500"}
    tall = {"PAGER": pager, "LINES": "10"}
    # not a terminal: never paged
    assert "DMO-SDG-001" in ok(demo("licenses", env=tall)).stdout and not log.exists()
    monkeypatch.setattr(cli, "_stdout_is_tty", lambda: True)
    assert "DMO-SDG-001" in ok(demo("licenses", env=short)).stdout and not log.exists()
    for off in (("licenses", "--no-pager"), ("--no-pager", "licenses"),
                ("licenses", "--json")):
        assert "DMO-SDG-001" in ok(demo(*off, env=tall)).stdout and not log.exists(), off
    assert "DMO-SDG-001" in ok(demo("licenses", env={**tall, "PAGER": ""})).stdout
    assert not log.exists()
    paged = ok(demo("licenses", env=tall))
    assert "DMO-SDG-001" not in paged.stdout
    assert "DMO-SDG-001" in log.read_text()


# -- tables that fit -------------------------------------------------------------------------------

STATES = ("OK", "WARNING", "ERROR", "EXPIRED", "SUSPENDED")


def test_tables_fit_80_columns_without_cutting_ids_dates_or_states(demo: Run) -> None:
    ok(demo("register-computer", "pc-1", "--group", "San Diego", "--fingerprint", "f1",
            "--product", "ESET Endpoint Security"))
    licenses = js(demo("licenses", "--json"))
    computers = js(demo("computers", "--json"))
    pools = js(demo("pools", "--json"))
    for columns in (80, 200):
        for command in (("licenses",), ("pools",), ("computers",), ("groups",), ("users",),
                        ("history", "DMO-SDG-001"), ("permissions", "John")):
            text = ok(demo(*command, columns=columns)).stdout
            widest = max(len(line) for line in text.splitlines())
            assert widest <= columns, (command, columns, text)
            assert "…" not in text, (command, columns, text)
        text = ok(demo("licenses", columns=columns)).stdout
        words = set(re.findall(r"[\w/()-]+", text))
        for row in licenses:  # type: ignore[union-attr]
            assert row["public_id"] in words
            if row["expires"]:
                assert row["expires"] in words
            assert row["status"]["level"] in words
        assert f"{licenses[0]['used_units']}/{licenses[0]['units']}" in words  # type: ignore[index]
        pool_text = ok(demo("pools", columns=columns)).stdout
        assert all(p["pool_id"] in pool_text for p in pools)  # type: ignore[union-attr]
        computer_text = ok(demo("computers", columns=columns)).stdout
        assert all(c["computer_id"] in computer_text for c in computers)  # type: ignore[union-attr]
    narrow = ok(demo("licenses", columns=80)).stdout
    assert "Not shown for want of width: Type, Owner, Tags, Forecast" in narrow
    wide = ok(demo("licenses", columns=200)).stdout
    assert "Not shown" not in wide
    for header in ("Public ID", "Product", "Type", "Used/Units", "Expires", "Owner", "Group",
                   "Tags", "Status", "Forecast"):
        assert header in wide


# -- confirmation and --dry-run --------------------------------------------------------------------


@pytest.fixture
def pcs(demo: Run) -> Run:
    for name, fp in (("pc-1", "fp-1"), ("pc-2", "fp-2")):
        ok(demo("register-computer", name, "--group", "San Diego", "--fingerprint", fp,
                "--product", "ESET Endpoint Security"))
    ok(demo("tag", "create", "audit"))
    ok(demo("tag", "assign", "DMO-SDG-001", "audit"))
    return demo


def test_bulk_destructive_commands_dry_run_record_nothing(
        pcs: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    later = datetime.now(UTC) + timedelta(days=40)  # pc-1 and pc-2 have not connected since
    monkeypatch.setattr(cli, "SystemClock", lambda: ManualClock(later))
    before = _events(pcs)
    listed = {name: js(pcs(name, "--json")) for name in ("licenses", "pools", "computers")}
    pool = js(pcs("remove", "Acme Corp", "--dry-run", "--json"))
    assert pool["public_ids"] == ["DMO-SDG-001", "DMO-SDG-002"] and pool["dry_run"]  # type: ignore[index]
    assert "Would remove 1 license pool(s)" in ok(pcs("remove", "Acme Corp", "--dry-run")).stdout
    one = js(pcs("remove-computer", "pc-1", "--dry-run", "--json"))
    assert one["name"] == "pc-1" and one["products"] == []  # type: ignore[index]
    tag = js(pcs("tag", "delete", "AUDIT", "--dry-run", "--json"))
    assert tag["tag"] == "audit" and tag["public_ids"] == ["DMO-SDG-001"]  # type: ignore[index]
    stale = js(pcs("delete-not-connecting", "All", "--days", "30", "--dry-run", "--json"))
    assert [c["name"] for c in stale["computers"]] == ["pc-1", "pc-2"]  # type: ignore[index]
    assert _events(pcs) == before
    assert {name: js(pcs(name, "--json")) for name in listed} == listed
    # what a dry run may not do, it refuses as the command would
    refused(pcs("--as", "John", "tag", "delete", "audit", "--dry-run"), 1, "administrator")
    refused(pcs("--as", "Makio", "delete-not-connecting", "Tokyo", "--days", "1",
                "--dry-run"), 1, "WRITE")


def test_bulk_destructive_commands_confirm(pcs: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _events(pcs)
    # without a terminal: refused, saying --yes is needed; nothing recorded
    for command in (("remove", "Acme Corp"), ("remove-computer", "pc-1"),
                    ("tag", "delete", "audit")):
        refused(pcs(*command), 1, "no terminal", "--yes")
    assert _events(pcs) == before
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
    declined = pcs("tag", "delete", "audit", input="n\n")
    refused(declined, 1, "not confirmed")
    assert "Delete tag audit?" in declined.stdout
    assert _events(pcs) == before
    ok(pcs("tag", "delete", "audit", input="y\n"))
    assert js(pcs("tag", "list", "--json")) == []
    ok(pcs("remove", "Acme Corp", "--yes"))
    assert "DMO-SDG-001" not in {r["public_id"] for r in js(pcs("licenses", "--json"))}  # type: ignore[union-attr]


# -- filter delete and keygen -------------------------------------------------------------------


def test_filter_delete(demo: Run) -> None:
    ok(demo("save-filter", "Trouble", "--level", "ERROR"))
    refused(demo("filter", "delete", "Troubel"), 1, "not found", "did you mean 'Trouble'",
            "esmc-licensing filters")
    assert js(demo("filter", "delete", "trouble", "--json")) == {"deleted": "Trouble"}
    assert js(demo("filters", "--json")) == {}


def test_keygen_prints_a_key_or_writes_a_private_key_file(bare: Run, tmp_path: Path) -> None:
    first = ok(bare("keygen")).stdout.strip()
    assert len(base64.b64decode(first, validate=True)) == 32
    assert first != ok(bare("keygen")).stdout.strip()
    assert len(base64.b64decode(js(bare("keygen", "--json"))["key"], validate=True)) == 32  # type: ignore[index]
    path = tmp_path / "seal.key"
    written = js(bare("keygen", "--output", str(path), "--json"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = read_key_file(path, "seal")
    assert written == {"key_file": str(path), "key_id": ring.current_id}
    assert base64.b64encode(ring.current).decode() not in json.dumps(written)
    content = path.read_bytes()
    refused(bare("keygen", "--output", str(path)), 2, "already exists")
    assert path.read_bytes() == content
    assert not (tmp_path / "esmc-licensing.db").exists()  # no store touched


def test_r8a_product_option_matches_case_insensitively(demo: Run) -> None:
    exact = js(demo("licenses", "--product", "ESET Endpoint Security", "--json"))
    assert [r["public_id"] for r in exact] == ["DMO-SDG-001"]  # type: ignore[union-attr]
    assert js(demo("licenses", "--product", "eset endpoint security", "--json")) == exact
    ok(demo("save-filter", "ees", "--product", "ESET ENDPOINT SECURITY"))
    assert js(demo("licenses", "--filter", "ees", "--json")) == exact


_JSON_LEAVES = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
)
_JSON_DATA = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=20,
)


@given(data=_JSON_DATA)
def test_json_output_is_the_text_json_would_write(data: Any) -> None:
    """``--json`` is written by orjson (several times faster for long lists);
    the text stays what ``json.dumps(indent=2, ensure_ascii=False)`` wrote."""
    assert cli.json_text(data) == json.dumps(data, indent=2, ensure_ascii=False)


@given(number=st.floats(allow_nan=False, allow_infinity=False))
def test_json_output_of_a_number_reads_back_as_that_number(number: float) -> None:
    assert json.loads(cli.json_text({"trend_per_day": number})) == {"trend_per_day": number}


def test_json_output_of_an_integer_past_64_bits_falls_back_to_json() -> None:
    assert cli.json_text([2**70]) == "[\n  1180591620717411303424\n]"


_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn"})


@given(data=_JSON_DATA | st.integers(2**64, 2**80))
def test_r33_an_export_line_is_one_line_of_json_with_nothing_a_terminal_acts_on(
    data: Any,
) -> None:
    """``audit export`` writes each entry with ``cli.json_line`` (orjson, compact,
    keys sorted): it reads back as the data, holds no line break, and every
    control, format or bidirectional character is escaped (R33)."""
    line = cli.json_line(data)
    assert json.loads(line) == data
    assert not [c for c in line if unicodedata.category(c) in _UNSAFE_CATEGORIES]
    if isinstance(data, dict):
        keys = [k for k, _ in json.loads(line, object_pairs_hook=list)]
        assert keys == sorted(keys)
