"""The event log port: append, read after a position, the end, one aggregate's events.

Commands, views and the runner reach the stored events only through this
port, so nothing else knows eventsourcing's recorder internals or the SQL of
its tables. It owns the lean SQLite writer's use (one multi-row insert per
save), the cheap "where does the log end?" probe, and raw page reads (a
SELECT of plain tuples on SQLite, where eventsourcing's recorder builds
several objects per row).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from eventsourcing.persistence import ApplicationRecorder, Notification, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from .adapters.mapper import EventMapper
from .adapters.sqlite_recorder import FastSQLiteApplicationRecorder
from .domain.events import TOPICS, DomainEvent

#: (position, originator id, originator version, topic, stored state)
LogRow = tuple[int, str, int, str, bytes]

PAGE_SIZE = 1000


class EventLog:
    """One store's events, in log order (positions are eventsourcing's notification ids)."""

    def __init__(self, recorder: ApplicationRecorder, mapper: EventMapper) -> None:
        self.recorder = recorder
        self.mapper = mapper
        #: neither encrypted nor compressed: stored states are plain JSON
        self.plain = not (mapper.cipher or mapper.compressor)
        self._lean = isinstance(recorder, FastSQLiteApplicationRecorder) and recorder.lean
        self._rows_of_statement: str | None = None

    # -- writing ---------------------------------------------------------------------

    def append(self, events: Sequence[DomainEvent]) -> list[int]:
        """Record events atomically; returns their positions.

        Raises eventsourcing's ``RecordConflictError`` (nothing recorded) when
        another writer recorded one of these aggregate versions first.
        """
        recorder = self.recorder
        if self._lean:
            assert isinstance(recorder, FastSQLiteApplicationRecorder)
            to_row = self.mapper.to_row
            params: list[Any] = []
            for e in events:
                topic, state = to_row(e)
                params += (e.originator_id.hex, e.originator_version, topic, state)
            return recorder.insert_rows(params)
        ids = recorder.insert_events([self.mapper.to_stored_event(e) for e in events])
        if ids is None:  # pragma: no cover - every application recorder returns ids
            raise RuntimeError("the recorder did not return the events' positions")
        return list(ids)

    # -- reading -----------------------------------------------------------------------

    def end(self) -> int:
        """The position of the last recorded event (0 for an empty log)."""
        recorder = self.recorder
        if isinstance(recorder, FastSQLiteApplicationRecorder):
            return recorder.log_end() or 0
        return recorder.max_notification_id() or 0

    def events_of(self, aggregate_id: uuid.UUID, after_version: int = 0) -> list[DomainEvent]:
        """One aggregate's events after a version, oldest first."""
        stored = self.recorder.select_events(aggregate_id, gt=after_version or None)
        decode = self.mapper.to_domain_event
        return [decode(s) for s in stored]

    def rows_of(self, aggregate_id: uuid.UUID, limit: int) -> list[LogRow]:
        """An aggregate's first ``limit`` stored rows, oldest first, undecoded (on
        SQLite a plain SELECT on the writer connection; position 0 elsewhere)."""
        r = self.recorder
        if self._lean:
            assert isinstance(r, FastSQLiteApplicationRecorder)
            statement = self._rows_of_statement
            if statement is None:
                statement = self._rows_of_statement = (
                    "SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {r.events_table_name} WHERE originator_id = ? "
                    "ORDER BY originator_version LIMIT ?"
                )
            return r.select_rows(statement, (aggregate_id.hex, limit))
        return [
            (0, str(s.originator_id), s.originator_version, s.topic, s.state)
            for s in r.select_events(aggregate_id, limit=limit)
        ]

    def events_of_many(
        self, aggregate_ids: Sequence[uuid.UUID], after_versions: Sequence[int]
    ) -> dict[uuid.UUID, list[DomainEvent]]:
        """Several aggregates' events after their versions, in one query per 500
        of them on SQLite (a sync loads thousands of licenses at once)."""
        r = self.recorder
        if not isinstance(r, SQLiteApplicationRecorder):
            pairs = zip(aggregate_ids, after_versions, strict=True)
            return {a: self.events_of(a, v) for a, v in pairs}
        after = {a.hex: v for a, v in zip(aggregate_ids, after_versions, strict=True)}
        by_hex = {a.hex: a for a in aggregate_ids}
        out: dict[uuid.UUID, list[DomainEvent]] = {a: [] for a in aggregate_ids}
        decode = self.decode
        for row in self._sqlite_rows_in(
            "originator_id", sorted(after), "originator_id, originator_version"
        ):
            key = row[1]
            if row[2] > after[key]:
                out[by_hex[key]].append(decode(row))
        return out

    def notifications(self, after: int, limit: int = PAGE_SIZE) -> Sequence[Notification]:
        """eventsourcing's notifications after a position (what seals digest, R31)."""
        return self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )

    def _sqlite_rows_in(self, column: str, values: Sequence[Any], order: str) -> list[LogRow]:
        """SQLite rows whose ``column`` is one of ``values``, 500 to a query."""
        r = self.recorder
        assert isinstance(r, SQLiteApplicationRecorder)
        rows: list[LogRow] = []
        for i in range(0, len(values), 500):
            chunk = values[i : i + 500]
            if self._lean:
                assert isinstance(r, FastSQLiteApplicationRecorder)
                rows.extend(
                    r.select_rows(
                        "SELECT rowid, originator_id, originator_version, topic, state "
                        f"FROM {r.events_table_name} WHERE {column} IN "
                        f"({', '.join('?' * len(chunk))}) ORDER BY {order}",
                        list(chunk),
                    )
                )
                continue
            with r.datastore.transaction(commit=False) as c:
                cursor = c.sqlite_cursor
                cursor.row_factory = None  # plain tuples: cheaper than sqlite3.Row
                cursor.execute(
                    "SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {r.events_table_name} WHERE {column} IN "
                    f"({', '.join('?' * len(chunk))}) ORDER BY {order}",
                    list(chunk),
                )
                rows.extend(cursor.fetchall())
        return rows

    def rows(self, after: int, stop: int | None = None, limit: int = PAGE_SIZE) -> list[LogRow]:
        """One page of stored rows after ``after`` (exclusive) up to ``stop`` (inclusive)."""
        r = self.recorder
        if isinstance(r, SQLiteApplicationRecorder):
            statement = (
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {r.events_table_name} WHERE rowid > ? "
            )
            params: list[Any] = [after]
            if stop is not None:
                statement += "AND rowid <= ? "
                params.append(stop)
            statement += "ORDER BY rowid LIMIT ?"
            params.append(limit)
            with r.datastore.transaction(commit=False) as c:
                cursor = c.sqlite_cursor
                cursor.row_factory = None  # plain tuples: cheaper than sqlite3.Row
                cursor.execute(statement, params)
                rows: list[LogRow] = cursor.fetchall()
                return rows
        notifications = r.select_notifications(
            start=after, limit=limit, stop=stop, inclusive_of_start=False
        )
        return [
            (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
            for n in notifications
        ]

    def pages(
        self, after: int, stop: int | None = None, limit: int = PAGE_SIZE
    ) -> Iterator[list[LogRow]]:
        """Pages of rows after ``after`` up to ``stop``; memory holds one page at a time."""
        while stop is None or after < stop:
            page = self.rows(after, stop, limit)
            if not page:
                return
            yield page
            after = page[-1][0]
            if len(page) < limit:
                return

    def decode(self, row: LogRow) -> DomainEvent:
        _, oid, version, topic, state = row
        if self.plain and topic in TOPICS:
            try:
                return self.mapper.decode_state(topic, orjson.loads(state), oid, version)
            except Exception:
                pass
        event: DomainEvent = self.mapper.to_domain_event(
            StoredEvent(originator_id=oid, originator_version=version, topic=topic, state=state)
        )
        return event

    def read(
        self, after: int, stop: int | None = None, limit: int = PAGE_SIZE
    ) -> Iterator[tuple[int, DomainEvent]]:
        """Decoded events after ``after`` up to ``stop``, streamed page by page."""
        decode = self.decode
        for page in self.pages(after, stop, limit):
            for row in page:
                yield row[0], decode(row)

    def at(self, positions: Sequence[int]) -> list[tuple[int, DomainEvent]]:
        """The events at these positions (a history's), in log order."""
        wanted = sorted(set(positions))
        rows: list[LogRow] = []
        r = self.recorder
        if isinstance(r, SQLiteApplicationRecorder):
            rows = self._sqlite_rows_in("rowid", wanted, "rowid")
        else:
            # runs of consecutive positions are read as one page
            i = 0
            while i < len(wanted):
                j = i
                while j + 1 < len(wanted) and wanted[j + 1] == wanted[j] + 1:
                    j += 1
                rows.extend(self.rows(wanted[i] - 1, wanted[j], j - i + 1))
                i = j + 1
        return [(row[0], self.decode(row)) for row in rows]


__all__ = ["PAGE_SIZE", "EventLog", "LogRow"]
