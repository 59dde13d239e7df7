"""The lean SQLite write path (adapters/sqlite_recorder.py) against eventsourcing's own.

The application writes SQLite files through ``FastSQLiteApplicationRecorder``:
one dedicated writer connection, one multi-row INSERT ... RETURNING per save,
and ``PRAGMA data_version`` to learn cheaply whether anyone else has written.
These tests hold it to what eventsourcing's recorder promises: the same rows,
the same notification ids, the same conflict error with nothing written, and
no write of another connection ever missed.
"""

from __future__ import annotations

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


def test_sqlite_lean_insert_conflict_writes_nothing(tmp_path: Path) -> None:
    fast, plain = _recorders(tmp_path / "s.db")
    oid = uuid.uuid4()
    fast.insert_events(_events(2, oid))
    with pytest.raises(IntegrityError) as caught:
        # a new event and then one that repeats version 2: all or nothing
        fast.insert_events(_events(1) + _events(1, oid, start=2))
    assert isinstance(caught.value, RecordConflictError)
    assert plain.max_notification_id() == 2
    assert fast.insert_events(_events(1, oid, start=3)) == [3]
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
            "INSERT INTO stored_events VALUES (?, 1, 'T', x'00')", (uuid.uuid4().hex,)
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
