"""A leaner write path for eventsourcing's SQLite application recorder.

One command saves a handful of events (an activation: four, on three
aggregates) in one transaction. eventsourcing's recorder spends about 100 µs
of each such save outside SQLite: a pooled connection taken and returned
under a reader-writer lock, a wrapped cursor, three nested context managers,
and one ``INSERT`` per event so that it can read each notification id from
``lastrowid``. This recorder writes the same rows into the same table, with
the same uniqueness check and the same errors, through one dedicated writer
connection, as one multi-row ``INSERT ... RETURNING rowid`` per 500 events,
so a command's save is ``BEGIN IMMEDIATE`` (the write lock is taken
up front, waiting for other writers like every SQLite connection here), one
statement and ``COMMIT``.

It also answers "has anyone else written since I last looked?" almost for
free: SQLite's ``PRAGMA data_version`` on a connection changes only when
*another* connection commits, so while it is unchanged the log ends where
this connection last wrote or looked (:meth:`FastSQLiteApplicationRecorder.log_end`).

A sealed save (R31) writes its seal in the same statement, on its last
row's ``seal`` column (stores created by this version; see
:mod:`.sealing`): the rows' positions are given, not returned, as the
last one this writer wrote plus one, and found again when another writer
took them first.

Reads, tracking and everything else stay eventsourcing's. In-memory
databases keep eventsourcing's write path (their connections must share
the pool's read-write interlock). The application uses this recorder for
every SQLite file unless ``APPLICATION_RECORDER_TOPIC`` names another one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.sqlite import SQLITE3_DEFAULT_LOCK_TIMEOUT, SQLiteApplicationRecorder
from eventsourcing.utils import get_topic

from .. import seals
from . import sealing

#: rows per INSERT statement (4 parameters each; SQLite allows 32,766)
ROWS_PER_STATEMENT = 500


def _persistence_error(e: sqlite3.Error) -> PersistenceError:
    """eventsourcing's error for a sqlite3 one, as its own recorder maps them
    (a duplicate (originator, version) is an ``IntegrityError``: a conflict)."""
    if isinstance(e, sqlite3.IntegrityError):
        return IntegrityError(e)
    if isinstance(e, sqlite3.OperationalError):
        return OperationalError(e)
    if isinstance(e, sqlite3.DatabaseError):
        return DatabaseError(e)
    return PersistenceError(e)


class FastSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder with a lean insert (see module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pool = self.datastore.pool
        self._lean = not pool.is_sqlite_memory_mode
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._statements: dict[int, str] = {}
        #: the data_version seen with the log end we know (both under the lock)
        self._data_version: int | None = None
        self._log_end: int | None = None
        #: seals each save in its transaction when set (R31, see adapters.sealing)
        self.sealer: Any = None
        self.seals_table_name = sealing.seals_table(self.events_table_name)
        #: the seal this writer committed last (under the lock)
        self._last_seal: Any = None
        #: whether the events table keeps the seals (None: not known yet)
        self._seal_column: bool | None = None
        columns = "originator_id, originator_version, topic, state"
        self.insert_events_statement = (
            f"INSERT INTO {self.events_table_name} ({columns}) VALUES (?, ?, ?, ?)"
        )

    def _create_table(self, c: Any) -> None:
        """A new store keeps its seals in its events table; an existing one keeps its layout
        (a store made before the seal column: its seals table, made if missing).

        The first statement writes (a new store) or changes nothing: a read
        first would make this transaction a reader that cannot become the
        writer while other processes create the same store ("database is
        locked" instead of waiting its turn).
        """
        events, *others = self.create_table_statements
        c.execute(sealing.sqlite_events_create_statement(events))
        table = self.events_table_name
        self._seal_column = bool(sealing.sqlite_seal_column(c.sqlite_cursor, table))
        if not self._seal_column:
            others.append(sealing.sqlite_create_statement(table))
        for statement in others:
            c.execute(statement)

    #: SQLite gives each event the highest position plus one: a gap is a deletion
    positions_without_gaps = True

    @property
    def seals_in_events_table(self) -> bool:
        """Whether this store keeps each save's seal on its last event row."""
        known = self._seal_column
        if known is None:
            with self.datastore.transaction(commit=False) as c:
                found = sealing.sqlite_seal_column(c.sqlite_cursor, self.events_table_name)
            if found is None:
                return False  # no events table (yet): nothing sealed either way
            known = self._seal_column = found
        return known

    # -- the writer connection -------------------------------------------------------

    def _writer(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            pool = self.datastore.pool
            conn = sqlite3.connect(
                pool.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,
                timeout=pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
            self._conn = conn
        return conn

    def close(self) -> None:
        """Close the writer connection (the pool's are the datastore's to close)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._data_version = None
                self._log_end = None

    def _statement(self, rows: int) -> str:
        statement = self._statements.get(rows)
        if statement is None:
            values = ", ".join(["(?, ?, ?, ?)"] * rows)
            statement = (
                f"INSERT INTO {self.events_table_name} "
                f"(originator_id, originator_version, topic, state) VALUES {values} RETURNING rowid"
            )
            self._statements[rows] = statement
        return statement

    # -- writing ------------------------------------------------------------------------

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not self._lean or kwargs.get("tracking") is not None:
            return super().insert_events(stored_events, **kwargs)
        params: list[Any] = []
        for s in stored_events:
            oid = s.originator_id
            params += (
                oid.hex if isinstance(oid, UUID) else oid,
                s.originator_version,
                s.topic,
                s.state,
            )
        return self.insert_rows(params)

    def _insert_events(
        self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """eventsourcing's insert (in-memory databases, tracking), sealed in its transaction."""
        in_column = self.sealer is not None and self.seals_in_events_table
        cursor = c.sqlite_cursor
        # the seal before this save's, read before its rows are there (in its transaction)
        previous = (
            sealing.sqlite_column_last_seal(cursor, self.events_table_name, seals.MARKER_TOPIC)
            if in_column and stored_events
            else None
        )
        ids = super()._insert_events(c, stored_events, **kwargs)
        if self.sealer is not None and ids:
            rows = sealing.stored_rows(ids, stored_events)
            if in_column:
                seal = self.sealer.seal(previous, rows)
                cursor.execute(
                    f"UPDATE {self.events_table_name} SET {sealing.SEAL_COLUMN} = ? "
                    "WHERE rowid = ?",
                    (sealing.encode_seal(seal), ids[-1]),
                )
            else:
                sealing.sqlite_seal(cursor, self.events_table_name, self.sealer, rows)
        return ids

    # -- what verification reads (R31) ---------------------------------------------------

    def last_seal(self) -> Any:
        if self.seals_in_events_table:
            with self.datastore.transaction(commit=False) as c:
                return sealing.sqlite_column_last_seal(
                    c.sqlite_cursor, self.events_table_name, seals.MARKER_TOPIC
                )
        found = self.seal_rows(None, 1)
        return found[0] if found else None

    def column_seal_rows(self, after: int, limit: int) -> list[Any]:
        """(position, stored seal) of sealed rows after a position (the column layout)."""
        with self.datastore.transaction(commit=False) as c:
            return sealing.sqlite_column_seal_rows(
                c.sqlite_cursor, self.events_table_name, after, limit
            )

    def sealed_rows_and_seals(self, after: int, limit: int) -> list[Any]:
        """Stored events after a position, each with its seal column (the column layout)."""
        with self.datastore.transaction(commit=False) as c:
            return sealing.sqlite_sealed_rows_and_seals(
                c.sqlite_cursor, self.events_table_name, after, limit
            )

    def seal_rows(self, after: int | None, limit: int) -> list[Any]:
        """Seals after ``after`` (their number) in order; with None, the last ``limit``."""
        with self.datastore.transaction(commit=False) as c:
            return sealing.sqlite_seal_rows(c.sqlite_cursor, self.events_table_name, after, limit)

    def sealed_rows(self, after: int, limit: int) -> list[Any]:
        """Stored events after a position as (position, id hex, version, topic, state)."""
        with self.datastore.transaction(commit=False) as c:
            return sealing.sqlite_sealed_rows(c.sqlite_cursor, self.events_table_name, after, limit)

    @property
    def lean(self) -> bool:
        """Whether :meth:`insert_rows` may be used (a file, not an in-memory database)."""
        return self._lean

    def insert_rows(self, params: list[Any]) -> list[int]:
        """Insert events given flat as (originator id hex, version, topic, state)
        four values each, in one transaction; returns their notification ids.

        The application's own save path encodes straight into this list, with
        no ``StoredEvent`` in between. A duplicate (originator id, version)
        raises eventsourcing's ``IntegrityError`` and nothing is written.
        """
        count = len(params) // 4
        ids: list[int] = []
        in_column = self.sealer is not None and count and self.seals_in_events_table
        with self._lock:
            conn = self._writer()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if in_column:
                        ids, sealed = self._insert_sealed(conn, params, count)
                    else:
                        ids, sealed = self._insert_returning(conn, params, count)
                    conn.execute("COMMIT")
                    self._last_seal = sealed
                except BaseException:
                    self._last_seal = None
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise _persistence_error(e) from e
            if ids and self._log_end is not None and ids[0] == self._log_end + 1:
                # nobody wrote between what we knew and our rows: still known
                self._log_end = ids[-1]
            else:
                self._log_end = None
        return ids

    def _insert_returning(
        self, conn: sqlite3.Connection, params: list[Any], count: int
    ) -> tuple[list[int], Any]:
        """Insert, reading the positions SQLite gives (sealed in a seals table, if at all)."""
        ids: list[int] = []
        for i in range(0, count, ROWS_PER_STATEMENT):
            n = min(ROWS_PER_STATEMENT, count - i)
            chunk = params[4 * i : 4 * (i + n)]
            # RETURNING's order is not promised: sort (rowids are
            # given in insert order, one writer at a time)
            ids += sorted([r[0] for r in conn.execute(self._statement(n), chunk)])
        sealed = None
        if self.sealer is not None and ids:
            p = params
            rows = list(zip(ids, p[0::4], p[1::4], p[2::4], p[3::4], strict=True))
            # the seal before ours is the one this writer made last, when
            # nobody saved in between (else our rows would not follow it)
            known = self._last_seal
            previous = known if known is not None and known.last + 1 == ids[0] else (
                sealing.sqlite_last_seal(conn, self.events_table_name)
            )
            sealed = sealing.sqlite_seal(
                conn, self.events_table_name, self.sealer, rows, previous
            )
        return ids, sealed

    def _insert_sealed(
        self, conn: sqlite3.Connection, params: list[Any], count: int
    ) -> tuple[list[int], Any]:
        """Insert at known positions with the seal on the last row (the column layout).

        The positions follow the seal this writer made last; when another
        writer has taken them since (the insert then fails on the position),
        they and the previous seal are read from the store and it is tried once more.
        """
        known = self._last_seal
        # (one statement only: a failed statement leaves nothing of the save behind)
        if known is not None and count <= ROWS_PER_STATEMENT:
            try:
                return self._insert_at(conn, params, count, known.last + 1, known)
            except sqlite3.IntegrityError:
                if self._log_tail(conn) == known.last:
                    raise  # the positions were free: a real conflict (a version taken)
        start = self._log_tail(conn) + 1
        previous = sealing.sqlite_column_last_seal(conn, self.events_table_name, seals.MARKER_TOPIC)
        return self._insert_at(conn, params, count, start, previous)

    def _log_tail(self, conn: sqlite3.Connection) -> int:
        row = conn.execute(f"SELECT MAX(rowid) FROM {self.events_table_name}").fetchone()
        return int(row[0] or 0)

    def _insert_at(
        self, conn: sqlite3.Connection, params: list[Any], count: int, start: int, previous: Any
    ) -> tuple[list[int], Any]:
        p = params
        ids = list(range(start, start + count))
        rows = list(zip(ids, p[0::4], p[1::4], p[2::4], p[3::4], strict=True))
        seal = self.sealer.seal(previous, rows)
        for i in range(0, count, ROWS_PER_STATEMENT):
            n = min(ROWS_PER_STATEMENT, count - i)
            values: list[Any] = []
            for row in rows[i : i + n]:
                values += row
                values.append(None)
            if i + n == count:
                values[-1] = sealing.encode_seal(seal)
            conn.execute(self._sealed_statement(n), values)
        return ids, seal

    def _sealed_statement(self, rows: int) -> str:
        key = -rows  # beside the unsealed statements, by row count
        statement = self._statements.get(key)
        if statement is None:
            values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
            statement = self._statements[key] = (
                f"INSERT INTO {self.events_table_name} (rowid, originator_id, "
                f"originator_version, topic, state, {sealing.SEAL_COLUMN}) VALUES {values}"
            )
        return statement

    def select_rows(self, statement: str, params: Sequence[Any]) -> list[Any]:
        """A small read (an aggregate's events) as plain tuples, on the writer
        connection: eventsourcing's pooled read transaction costs more than the
        SELECT itself (a connection taken and returned under a lock, a wrapped
        cursor, nested context managers). Sees every committed write."""
        with self._lock:
            conn = self._writer()
            try:
                return conn.execute(statement, params).fetchall()
            except sqlite3.Error as e:
                raise _persistence_error(e) from e

    # -- where the log ends ---------------------------------------------------------------

    def log_end(self) -> int | None:
        """The highest notification id, asked of SQLite only when another
        connection has committed since this one last wrote or looked."""
        if not self._lean:
            return self.max_notification_id()
        with self._lock:
            conn = self._writer()
            try:
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version == self._data_version and self._log_end is not None:
                    return self._log_end
                row = conn.execute(
                    f"SELECT MAX(rowid) FROM {self.events_table_name}"
                ).fetchone()
            except sqlite3.Error as e:
                raise _persistence_error(e) from e
            self._data_version = version
            self._log_end = row[0]
            return self._log_end


def refuse_foreign_database(db_name: str, events_table: str = "stored_events") -> None:
    """Refuse, before anything is written to it, a SQLite file that is another
    application's database (tables, none of them our events): opening it as a
    store would silently add our tables to it.

    An absent or empty file, an in-memory database and a store of ours pass.
    Read through a read-only connection, so the file is left as it was.
    """
    from pathlib import Path
    from urllib.parse import unquote, urlsplit

    from ..domain.errors import AdapterUnavailable

    if not db_name or ":memory:" in db_name or "mode=memory" in db_name:
        return
    uri = db_name.startswith("file:")
    path = Path(unquote(urlsplit(db_name).path)) if uri else Path(db_name)
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return
    except OSError:
        return  # SQLite will say what is wrong with it
    read_only = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(read_only, uri=True)) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = {r[0] for r in rows}
    except sqlite3.Error:
        return  # not readable as a database: SQLite will say so when it is opened
    if tables and events_table not in tables:
        raise AdapterUnavailable(
            f"cannot open the store: {path} is a SQLite database of another application "
            "(it has tables, but no events); name a new file or a store of this library"
        )


TOPIC = get_topic(FastSQLiteApplicationRecorder)

__all__ = [
    "ROWS_PER_STATEMENT",
    "TOPIC",
    "FastSQLiteApplicationRecorder",
    "refuse_foreign_database",
]
