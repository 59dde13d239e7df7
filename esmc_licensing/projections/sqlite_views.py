"""Views in a SQLite file, each batch written with its tracking record in one transaction.

The views live in a file of their own (not the event store's): SQLite has one
writer at a time, and a runner's page-sized transactions must not hold up the
application's commands. The file runs in WAL mode with ``synchronous=NORMAL``:
a power cut may lose the last committed batches, but rows and tracking record
are lost together, so the runner re-applies exactly those events -- views are
derived data, rebuilt from the log at will, so this trade costs no durability
that matters and makes each batch several times cheaper.
"""

from __future__ import annotations

import sqlite3
import threading
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from .store import AuditIndex, SQLViewStore, sorted_audit_items

#: targets per statement when inserting audit references (see ``_insert_audit``)
AUDIT_TARGETS_PER_STATEMENT = 256


class SQLiteViewStore(SQLViewStore):
    without_rowid = " WITHOUT ROWID"

    def __init__(self, path: str | Path, *, prefix: str = "esmc_view_") -> None:
        super().__init__(prefix)
        self.path = str(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        # 2 MiB of pages (SQLite's default). A rebuild's one write goes through
        # this cache in key order, and 8 MiB made it no faster but was most
        # of the 6 MiB the write added to the rebuild's peak memory -- memory
        # the rebuild now spends on pending patches (see ``CodecDict.max_patches``).
        self._conn.execute("PRAGMA cache_size=-2048")
        with self._transaction(write=True) as c:
            self.create_tables(c)

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            c = self._conn.cursor()
            c.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            else:
                c.execute("COMMIT")
            finally:
                c.close()

    def _is_integrity_error(self, e: BaseException) -> bool:
        return isinstance(e, sqlite3.IntegrityError)

    def _insert_audit(self, c: Any, index: AuditIndex) -> None:
        """Hand SQLite whole targets as JSON and let it expand them into rows.

        ``executemany`` of one (target, position) pair per row spends most of a
        rebuild's audit write binding parameters in Python (a 1,000,000-event
        rebuild writes 1.3 million references); one JSON object of 2,000
        targets per statement, expanded by ``json_each`` inside SQLite, costs
        about half. Targets go in key order and positions ascend within each,
        so the rows arrive in primary-key order.
        """
        statement = (
            f"INSERT INTO {self.audit} (target, position) "
            "SELECT t.key, p.value FROM json_each(?) t, json_each(t.value) p"
        )
        dumps = orjson.dumps
        chunk: dict[str, list[int]] = {}
        for target, positions in sorted_audit_items(index):
            chunk[target] = positions.tolist() if isinstance(positions, array) else list(positions)
            if len(chunk) >= AUDIT_TARGETS_PER_STATEMENT:
                c.execute(statement, (dumps(chunk),))
                chunk = {}
        if chunk:
            c.execute(statement, (dumps(chunk),))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteViewStore({self.path!r})"

    def __getstate__(self) -> Any:  # pragma: no cover - stores are not copied
        raise TypeError("a view store holds a connection and cannot be copied")
