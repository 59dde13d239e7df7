"""History is forever: a store written by the previous version opens and shows the same facts.

``tests/fixtures/store-8f60be7.*`` was written by the version before the
views were redesigned (commit 8f60be7), with
``scripts/make_previous_store_fixture.py``: every stored event row, and what
that version's queries answered. Loaded into a new SQLite file, the store
must open with this version -- building its views from the log on first
open -- and answer exactly the same (R29, R30).

``tests/fixtures/sealed-store-86d885d.*`` was written, sealed, by the version
before seals moved onto the events' rows (commit 86d885d, ``--sealed``): its
events table as eventsourcing makes it and its seals table. It must verify,
answer the same, and go on sealing in its own layout (R31).
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from esmc_licensing import (
    Adapters,
    InMemoryActivationServer,
    LicenseManagement,
    ManualClock,
    seals,
)
from esmc_licensing.projections.runner import LogReader
from esmc_licensing.testing import stores

FIXTURES = Path(__file__).parent / "fixtures"
PREVIOUS = FIXTURES / "store-8f60be7"


def _fixture_script() -> Any:
    """``scripts/make_previous_store_fixture.py``, which made the fixtures."""
    spec = importlib.util.spec_from_file_location(
        "make_previous_store_fixture",
        Path(__file__).parents[1] / "scripts" / "make_previous_store_fixture.py",
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _answers_of() -> Any:
    return _fixture_script().answers


def _as_recorded(now: Any, recorded: Any) -> Any:
    """``now`` with only the fields the recorded answer has: a view may have gained
    fields since (a license's forecast, R36), but every fact recorded must be shown
    as it was."""
    if isinstance(now, dict) and isinstance(recorded, dict):
        return {k: _as_recorded(now[k], recorded[k]) for k in recorded if k in now}
    if isinstance(now, list) and isinstance(recorded, list) and len(now) == len(recorded):
        return [_as_recorded(n, r) for n, r in zip(now, recorded, strict=True)]
    return now


@pytest.fixture
def previous_store(tmp_path: Path) -> dict[str, str]:
    env = stores.sqlite_env(tmp_path / "previous.db")
    LogReader(env=env).close()  # eventsourcing's tables, empty
    rows = [
        json.loads(line)
        for line in (PREVIOUS.with_suffix(".events.jsonl")).read_text().splitlines()
    ]
    with sqlite3.connect(tmp_path / "previous.db") as conn:
        conn.executemany(
            "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (r["position"], r["originator_id"], r["originator_version"], r["topic"],
                 r["state"].encode())
                for r in rows
            ],
        )
    return env


def _recorded(fixture: Path) -> dict[str, Any]:
    """What the version that wrote a fixture answered, and when."""
    recorded: dict[str, Any] = json.loads(fixture.with_suffix(".answers.json").read_text())
    return recorded


def _opened_then(env: dict[str, str], recorded: dict[str, Any]) -> LicenseManagement:
    """The application on a fixture's store, its clock where the answers were recorded."""
    clock = ManualClock(datetime.fromisoformat(recorded["now"]))
    return LicenseManagement(
        env=env,
        adapters=Adapters(activation_server=InMemoryActivationServer(clock=clock), clock=clock),
    )


def test_r30_a_store_of_the_previous_version_answers_as_that_version_did(
    previous_store: dict[str, str],
) -> None:
    recorded = _recorded(PREVIOUS)
    app = _opened_then(previous_store, recorded)
    now = _answers_of()(app)
    assert now.keys() == recorded["answers"].keys()
    for query, answer in recorded["answers"].items():
        _assert_same_facts(query, now[query], answer)
    app.close()


def _as_text(value: Any) -> str:
    """A typed history detail as that version printed it (R29 typed them since)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(sorted(str(v) for v in value))
    return str(value)


def _assert_same_facts(query: str, now: Any, then: Any) -> None:
    """The same answer; a history the same facts: its details are typed now and
    name groups, users, pools and computers beside their ids (extra keys)."""
    if not query.startswith("history "):
        assert _as_recorded(now, then) == then, query
        return
    # the actor was shown by name; it is now an id beside its name (api.md)
    assert [
        (e["position"], e["what"], e["actor_name"], e["when"], e["target"]) for e in now
    ] == [(e["position"], e["what"], e["actor"], e["when"], e["target"]) for e in then], query
    for new, old in zip(now, then, strict=True):
        for key, text in old["details"].items():
            shown = _as_text(new["details"][key])
            assert text in (shown, shown.replace("T", " ", 1)), (query, new["what"], key)


def test_r30_reopening_the_previous_store_gives_the_same_answers_again(
    previous_store: dict[str, str],
) -> None:
    """The first open built the views from the log; the second reads them as they are."""
    recorded = _recorded(PREVIOUS)
    for _ in range(2):
        app = _opened_then(previous_store, recorded)
        answers = _answers_of()(app)
        assert answers.keys() == recorded["answers"].keys()
        for query, answer in recorded["answers"].items():
            _assert_same_facts(query, answers[query], answer)
        app.close()


SEALED = FIXTURES / "sealed-store-86d885d"


@pytest.fixture
def sealed_previous_store(tmp_path: Path) -> dict[str, str]:
    """The sealed store of 86d885d, its tables made as that version made them."""
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    from esmc_licensing.adapters import sealing

    script = _fixture_script()
    path = tmp_path / "sealed.db"
    SQLiteApplicationRecorder(SQLiteDatastore(str(path))).create_table()
    rows = [json.loads(line) for line in
            SEALED.with_suffix(".events.jsonl").read_text().splitlines()]
    seals = [json.loads(line) for line in
             SEALED.with_suffix(".seals.jsonl").read_text().splitlines()]
    with sqlite3.connect(path) as conn:
        conn.execute(sealing.sqlite_create_statement("stored_events"))
        conn.executemany(
            "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?, ?)",
            [(r["position"], r["originator_id"], r["originator_version"], r["topic"],
              r["state"].encode()) for r in rows],
        )
        conn.executemany(
            "INSERT INTO stored_events_seals VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(x["seq"], x["first"], x["last"], x["positions"], x["key_id"],
              bytes.fromhex(x["digests"]), x["chain"]) for x in seals],
        )
    env = stores.sqlite_env(path)
    env.update(ESMC_SEAL_KEY=script.SEAL_KEY, ESMC_DATA_KEY=script.DATA_KEY)
    return env


def test_r31_a_sealed_store_of_the_previous_version_verifies_and_keeps_its_seals_table(
    sealed_previous_store: dict[str, str],
) -> None:
    recorded = _recorded(SEALED)
    app = _opened_then(sealed_previous_store, recorded)
    admin = app.administrator
    end = app._core.recorder.max_notification_id()
    report = app.verify_history(admin)
    assert report.ok and report.sealed_up_to == end, str(report)
    now = _answers_of()(app)
    assert now.keys() == recorded["answers"].keys()
    for query, answer in recorded["answers"].items():
        assert _as_recorded(now[query], answer) == answer, query  # that version's form
    # new saves are sealed as that version sealed them: in its seals table
    app.create_group(admin, "Added later")
    assert not app._core.recorder.seals_in_events_table  # type: ignore[attr-defined]
    report = app.verify_history(admin)
    assert report.ok and report.sealed_up_to == app._core.recorder.max_notification_id()
    app.close()
    with sqlite3.connect(sealed_previous_store["SQLITE_DBNAME"]) as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(stored_events)")}
        (seals_after,) = conn.execute("SELECT COUNT(*) FROM stored_events_seals").fetchone()
        conn.execute("UPDATE stored_events SET state = state || x'20' WHERE rowid = 5")
    assert "seal" not in columns and seals_after > 28
    report = seals.verify_store(sealed_previous_store)
    assert [(p.position, p.kind) for p in report.problems] == [(5, "altered")]
