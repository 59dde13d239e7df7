"""The lean SQLite write path (adapters/sqlite_recorder.py) against eventsourcing's own.

The application writes SQLite files through ``FastSQLiteApplicationRecorder``:
one dedicated writer connection, one multi-row INSERT ... RETURNING per save,
and ``PRAGMA data_version`` to learn cheaply whether anyone else has written.
These tests hold it to what eventsourcing's recorder promises: the same rows,
the same notification ids, the same conflict error with nothing written, and
no write of another connection ever missed.
"""

from __future__ import annotations

import itertools
import sqlite3
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import (
    IntegrityError,
    RecordConflictError,
    StoredEvent,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from esmc_licensing import Adapters, LicenseManagement
from esmc_licensing.adapters.sqlite_recorder import (
    ROWS_PER_STATEMENT,
    FastSQLiteApplicationRecorder,
)
from esmc_licensing.testing import stores

from .conftest import issue


def _recorders(path: Path) -> tuple[FastSQLiteApplicationRecorder, SQLiteApplicationRecorder]:
    fast = FastSQLiteApplicationRecorder(SQLiteDatastore(str(path)))
    fast.create_table()
    plain = SQLiteApplicationRecorder(SQLiteDatastore(str(path)))
    # eventsourcing's insert names no columns; the events table of a store made
    # by this version has one more (each save's seal, R31)
    plain.insert_events_statement = fast.insert_events_statement
    return fast, plain


def _events(n: int, oid: uuid.UUID | None = None, start: int = 1) -> list[StoredEvent]:
    oid = oid or uuid.uuid4()
    return [
        StoredEvent(originator_id=oid, originator_version=start + i, topic="T", state=b"%d" % i)
        for i in range(n)
    ]


def test_sqlite_lean_insert_gives_the_ids_eventsourcing_reads_back(tmp_path: Path) -> None:
    fast, plain = _recorders(tmp_path / "s.db")
    written = _events(3) + _events(2 * ROWS_PER_STATEMENT + 7)  # several statements
    ids = list(fast.insert_events(written) or ())
    stored = plain.select_notifications(start=1, limit=10_000)
    assert ids == [n.id for n in stored] == list(range(1, len(written) + 1))
    assert [(n.originator_id, n.originator_version, n.topic, n.state) for n in stored] == [
        (e.originator_id, e.originator_version, e.topic, e.state) for e in written
    ]
    fast.close()


@pytest.mark.parametrize("sealed", [False, True], ids=["unsealed", "sealed"])
def test_r31_lean_insert_conflict_writes_nothing_and_the_chain_goes_on(
    tmp_path: Path, sealed: bool
) -> None:
    """Sealed, the save's positions are given and its seal is on its last row:
    a conflict still writes nothing, seal included, and the next save chains on."""
    fast, plain = _sealed(tmp_path / "s.db") if sealed else _recorders(tmp_path / "s.db")
    oid = uuid.uuid4()
    fast.insert_events(_events(2, oid))
    with pytest.raises(IntegrityError) as caught:
        # a new event and then one that repeats version 2: all or nothing
        fast.insert_events(_events(1) + _events(1, oid, start=2))
    assert isinstance(caught.value, RecordConflictError)
    assert plain.max_notification_id() == 2
    assert fast.insert_events(_events(1, oid, start=3)) == [3]
    if sealed:
        assert _chain_is_whole(fast) == [(1, 1, 2), (2, 3, 3)]
    fast.close()


def test_sqlite_log_end_sees_every_write_of_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    fast, plain = _recorders(path)
    assert fast.log_end() is None
    fast.insert_events(_events(2))
    assert fast.log_end() == 2  # own write: known without asking
    plain.insert_events(_events(3))  # another connection of this process
    assert fast.log_end() == 5
    other = sqlite3.connect(path)
    with other:
        other.execute(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
            "VALUES (?, 1, 'T', x'00')", (uuid.uuid4().hex,)
        )
    other.close()
    assert fast.log_end() == 6
    fast.insert_events(_events(1))
    assert fast.log_end() == 7
    fast.close()


def test_sqlite_app_on_sqlite_writes_through_the_lean_recorder(tmp_path: Path, vendor) -> None:
    env = stores.sqlite_env(tmp_path / "licenses.db")
    app = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor))
    assert isinstance(app._core.recorder, FastSQLiteApplicationRecorder)
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D34"))
    # a second application on the same file sees it, and its writes are seen back
    other = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor))
    assert [v.public_id for v in other.licenses(other.administrator)] == ["3AB-C12-D34"]
    other.add_license_key(other.administrator, issue(vendor, "3AB-C12-D35"))
    assert {v.public_id for v in app.licenses(app.administrator)} == {
        "3AB-C12-D34",
        "3AB-C12-D35",
    }
    other.close()
    app.close()


def test_sqlite_application_recorder_topic_still_chooses_the_recorder(tmp_path: Path) -> None:
    env = stores.sqlite_env(tmp_path / "licenses.db")
    env["APPLICATION_RECORDER_TOPIC"] = "eventsourcing.sqlite:SQLiteApplicationRecorder"
    app = LicenseManagement(env=env)
    assert type(app._core.recorder) is SQLiteApplicationRecorder
    assert app.position > 0
    app.close()


def test_sqlite_in_memory_database_keeps_eventsourcings_write_path(vendor) -> None:
    """An in-memory SQLite database shares one connection pool's read-write
    interlock: the lean writer stands aside and eventsourcing's path records."""
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": f"file:lean{uuid.uuid4().hex}?mode=memory&cache=shared",
    }
    app = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor))
    assert isinstance(app._core.recorder, FastSQLiteApplicationRecorder)
    assert not app._core.recorder.lean
    before = app.position
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D34"))
    assert app.position > before
    assert [v.public_id for v in app.licenses(app.administrator)] == ["3AB-C12-D34"]
    app.close()


# -- seals on the events' rows (R31) ----------------------------------------------------


def _sealed(path: Path) -> tuple[FastSQLiteApplicationRecorder, FastSQLiteApplicationRecorder]:
    from esmc_licensing import seals
    from esmc_licensing.keyring import Keyring, generate_key

    ring = Keyring.of("seal", generate_key())
    first, second = (FastSQLiteApplicationRecorder(SQLiteDatastore(str(path))) for _ in "ab")
    first.create_table()
    for r in (first, second):
        r.sealer = seals.Sealer(ring)
    return first, second


def _chain_is_whole(recorder: FastSQLiteApplicationRecorder) -> list[tuple[int, int, int]]:
    """(seq, first, last) of every seal, after checking each follows the one before."""
    from esmc_licensing.adapters import sealing

    _, seals_read = sealing.log_and_seals(recorder)
    found = list(seals_read)
    spans = [(s.seq, s.first, s.last) for s in found]  # type: ignore[union-attr]
    for (seq, _, last), (next_seq, next_first, _) in itertools.pairwise(spans):
        assert (next_seq, next_first) == (seq + 1, last + 1), spans
    return spans


def test_r31_a_new_store_keeps_each_seal_on_its_saves_last_row(tmp_path: Path) -> None:
    fast, _ = _sealed(tmp_path / "s.db")
    assert fast.seals_in_events_table
    assert fast.insert_events(_events(3)) == [1, 2, 3]
    assert fast.insert_events(_events(2)) == [4, 5]
    with sqlite3.connect(tmp_path / "s.db") as conn:
        sealed_rows = [r[0] for r in conn.execute(
            "SELECT rowid FROM stored_events WHERE seal IS NOT NULL ORDER BY rowid")]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert sealed_rows == [3, 5]
    assert "stored_events_seals" not in tables  # one layout per store
    assert _chain_is_whole(fast) == [(1, 1, 3), (2, 4, 5)]
    assert fast.last_seal().seq == 2
    fast.close()


def test_r31_sealed_saves_of_two_writers_take_the_next_positions_and_one_chain(
    tmp_path: Path,
) -> None:
    """A writer gives its rows the positions after its own last save; when the
    other writer took them, it finds the log's end and the last seal again."""
    first, second = _sealed(tmp_path / "s.db")
    assert first.insert_events(_events(2)) == [1, 2]
    assert second.insert_events(_events(1)) == [3]
    assert first.insert_events(_events(2)) == [4, 5]  # not 3, 4: those were taken
    assert second.insert_events(_events(1)) == [6]
    assert first.insert_events(_events(1)) == [7]
    assert _chain_is_whole(first) == [(1, 1, 2), (2, 3, 3), (3, 4, 5), (4, 6, 6), (5, 7, 7)]
    first.close()
    second.close()


def test_r31_a_save_larger_than_one_statement_is_sealed_once(tmp_path: Path) -> None:
    fast, second = _sealed(tmp_path / "s.db")
    fast.insert_events(_events(1))
    second.insert_events(_events(1))  # so the big save must find its positions
    n = ROWS_PER_STATEMENT * 2 + 7
    ids = fast.insert_events(_events(n))
    assert ids == list(range(3, 3 + n))
    assert _chain_is_whole(fast)[-1] == (3, 3, 2 + n)
    fast.close()
    second.close()


def test_r31_a_store_with_a_seals_table_keeps_its_layout(tmp_path: Path) -> None:
    """A store made before the seal column (its events table as eventsourcing
    makes it, seals in ``stored_events_seals``) is written as it was."""
    from esmc_licensing.adapters import sealing

    path = tmp_path / "old.db"
    plain = SQLiteApplicationRecorder(SQLiteDatastore(str(path)))
    plain.create_table()
    with sqlite3.connect(path) as conn:
        conn.execute(sealing.sqlite_create_statement("stored_events"))
    fast, second = _sealed(path)
    assert not fast.seals_in_events_table
    assert fast.insert_events(_events(2)) == [1, 2]
    assert second.insert_events(_events(1)) == [3]
    assert fast.insert_events(_events(1)) == [4]
    with sqlite3.connect(path) as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(stored_events)")}
        (count,) = conn.execute("SELECT COUNT(*) FROM stored_events_seals").fetchone()
    assert "seal" not in columns and count == 3
    assert _chain_is_whole(fast) == [(1, 1, 2), (2, 3, 3), (3, 4, 4)]
    fast.close()
    second.close()


def test_r31_an_in_memory_sqlite_store_seals_through_eventsourcing_s_insert() -> None:
    """In-memory databases keep eventsourcing's write path; its saves are sealed
    on their last row too, each after the one before."""
    from esmc_licensing import seals
    from esmc_licensing.keyring import Keyring, generate_key

    recorder = FastSQLiteApplicationRecorder(SQLiteDatastore(":memory:"))
    recorder.create_table()
    assert not recorder.lean and recorder.seals_in_events_table
    recorder.sealer = seals.Sealer(Keyring.of("seal", generate_key()))
    for n in (2, 3, 1):
        recorder.insert_events(_events(n))
    assert _chain_is_whole(recorder) == [(1, 1, 2), (2, 3, 5), (3, 6, 6)]


def test_r31_verification_reads_rows_and_seals_in_one_scan(tmp_path: Path) -> None:
    """Verification reads the rows and the seals of the column layout in one
    scan; past a long unsealed stretch (more rows than it holds) it looks for
    the next seals with a query of their own. Untouched, every save after the
    stretch is sealed; with 5,000 rows' seals deleted and a row altered, each
    is named where it is."""
    from esmc_licensing import seals
    from esmc_licensing.adapters import sealing

    fast, _ = _sealed(tmp_path / "s.db")
    sealer = fast.sealer
    fast.sealer = None
    fast.insert_events(_events(12_000))  # a long stretch from before sealing
    fast.sealer = sealer
    for n in (2, 3, 1, 4) * 700:
        fast.insert_events(_events(n))

    def verified() -> seals.HistoryReport:
        return seals.verify_log(*sealing.log_and_seals(fast), [], sealer.ring)

    report = verified()
    assert report.ok and report.checked == report.sealed_up_to == 12_000 + 10 * 700
    assert (report.unsealed, report.not_sealed_before) == (12_000, 12_001)
    with sqlite3.connect(tmp_path / "s.db") as conn:  # 5,000 rows' seals deleted
        conn.execute("UPDATE stored_events SET seal = NULL WHERE rowid BETWEEN 13000 AND 18000")
        conn.execute("UPDATE stored_events SET state = x'00' WHERE rowid = 18500")
    # the save ending at 13000 began at 12997; the first seal left is 18001's
    assert [(p.position, p.kind) for p in verified().problems] == [
        (12_997, "unsealed"), (18_001, "seal-removed"), (18_500, "altered"),
    ]
    fast.close()
