"""eventsourcing's own conformance tests for tracking recorders, on our view stores.

The SQLite and PostgreSQL view stores record tracking objects atomically with
the view rows (issue 5); here they must behave as eventsourcing expects of any
``TrackingRecorder``: no tracking id twice, no filling a gap, ``max_tracking_id``,
``has_tracking_id`` and ``wait`` with its timeout and interrupt.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.tests.persistence import TrackingRecorderTestCase

from esmc_licensing.projections.postgres_views import PostgresViewStore
from esmc_licensing.projections.sqlite_views import SQLiteViewStore
from esmc_licensing.projections.store import AuditRef, AuditRow, MemoryViewStore, ViewStore
from esmc_licensing.testing import stores


class TestMemoryViewStoreIsATrackingRecorder(TrackingRecorderTestCase):
    def create_recorder(self) -> MemoryViewStore:
        return MemoryViewStore()


class TestSQLiteViewStoreIsATrackingRecorder(TrackingRecorderTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.opened: list[ViewStore] = []

    def tearDown(self) -> None:
        for s in self.opened:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def create_recorder(self) -> SQLiteViewStore:
        store = SQLiteViewStore(Path(self.dir) / "views.db")
        self.opened.append(store)
        return store


class TestPostgresViewStoreIsATrackingRecorder(TrackingRecorderTestCase):
    def setUp(self) -> None:
        reason = stores.postgres_unavailable_reason()
        if reason is not None:
            if stores.REQUIRE_SERVICES:
                pytest.fail(reason)
            pytest.skip(reason)
        self.schema_cm = stores.postgres_schema()
        self.schema = self.schema_cm.__enter__()
        self.opened: list[ViewStore] = []

    def tearDown(self) -> None:
        for s in self.opened:
            s.close()
        self.schema_cm.__exit__(None, None, None)

    def create_recorder(self) -> PostgresViewStore:
        store = PostgresViewStore.from_env(stores.postgres_env(self.schema))
        self.opened.append(store)
        return store


# -- what the runner relies on beyond the conformance case ---------------------------------


def _audit(position: int) -> AuditRef:
    return ("tag:a", position)




@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
def test_r30_a_batch_commits_with_its_tracking_record_or_not_at_all(
    backend: str, tmp_path: Path
) -> None:
    def run(store: ViewStore) -> None:
        name = store.application_name
        store.write(Tracking(name, 2), [("tags_of", "pool:x", None, None, b'["a"]')],
                    [_audit(1), _audit(2)], previous=None)
        # compare-and-set: a second runner that also started from nothing loses, whole
        with pytest.raises(IntegrityError):
            store.write(Tracking(name, 3), [("tags_of", "pool:y", None, None, b'["b"]')],
                        [_audit(3)], previous=None)
        # a stale runner (it thinks the position is 1) loses too
        with pytest.raises(IntegrityError):
            store.write(Tracking(name, 3), [], [_audit(3)], previous=1)
        assert store.max_tracking_id(name) == 2
        position, rows = store.changes_since(0)
        assert position == 2 and [r[1] for r in rows] == ["pool:x"]
        assert [a.position for a in store.audit_rows()] == [1, 2]
        store.write(Tracking(name, 3), [("tags_of", "pool:x", None, None, None)],
                    [_audit(3)], previous=2)
        assert store.changes_since(2) == (3, [("tags_of", "pool:x", None, None, None)])
        assert store.history("tag:a") == [1, 2, 3]
        assert store.audit_rows()[-1] == AuditRow(3, ("tag:a",))
        store.drop()
        assert store.max_tracking_id(name) is None and store.audit_rows() == []

    if backend == "memory":
        run(MemoryViewStore())
    elif backend == "sqlite":
        s = SQLiteViewStore(tmp_path / "views.db")
        try:
            run(s)
        finally:
            s.close()
    else:
        reason = stores.postgres_unavailable_reason()
        if reason is not None:
            if stores.REQUIRE_SERVICES:
                pytest.fail(reason)
            pytest.skip(reason)
        with stores.postgres_schema() as schema:
            p = PostgresViewStore.from_env(stores.postgres_env(schema))
            try:
                run(p)
            finally:
                p.close()


def test_r30_views_of_another_schema_version_are_dropped_not_misread(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "views.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE esmc_view_tracking (application_name TEXT PRIMARY KEY, "
                "notification_id INTEGER NOT NULL)")
    old.execute("INSERT INTO esmc_view_tracking VALUES ('LicenseManagement', 42)")
    old.execute("CREATE TABLE esmc_view_audit_targets (target TEXT, position INTEGER)")
    old.commit()
    old.close()
    store = SQLiteViewStore(path)
    try:
        assert store.max_tracking_id("LicenseManagement") is None  # rebuilt from nothing
        store.insert_tracking(Tracking("LicenseManagement", 1))
    finally:
        store.close()
    again = SQLiteViewStore(path)  # the current version is kept
    try:
        assert again.max_tracking_id("LicenseManagement") == 1
    finally:
        again.close()
