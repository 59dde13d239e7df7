"""The seals table beside the events, written in the save's own transaction (R31).

Each recorder the application uses (SQLite, PostgreSQL, in memory) holds a
``sealer`` (None: saves are not sealed) and, when it is set, writes one
:class:`~esmc_licensing.seals.SealRow` per save in the same transaction as
the save's events, after reading the previous seal there (writers are
serialised: SQLite's write lock, PostgreSQL's table lock on the events), so
the chain has no fork. Stored events are never rewritten: seals live in a
table of their own, ``<events table>_seals``.

They also read what verification streams: the events as sealed rows
(originator ids as 32 hex digits, whatever the column type) and the seals,
a page at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from ..seals import HistoryProblem, SealedRow, Sealer, SealRow

PAGE = 2000


def seals_table(events_table: str) -> str:
    return f"{events_table}_seals"


def sqlite_create_statement(events_table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {seals_table(events_table)} ("
        "seq INTEGER PRIMARY KEY, first INTEGER NOT NULL, last INTEGER NOT NULL, "
        "positions TEXT NOT NULL, key_id TEXT NOT NULL, digests BLOB NOT NULL, "
        "chain TEXT NOT NULL)"
    )


def seal_row(r: Sequence[Any]) -> SealRow:
    return SealRow(int(r[0]), int(r[1]), int(r[2]), r[3], r[4], bytes(r[5]), r[6])


def sqlite_last_seal(cursor: Any, events_table: str) -> SealRow | None:
    row = cursor.execute(
        "SELECT seq, first, last, positions, key_id, digests, chain "
        f"FROM {seals_table(events_table)} ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return None if row is None else seal_row(row)


def sqlite_seal(
    cursor: Any,
    events_table: str,
    sealer: Sealer,
    rows: list[SealedRow],
    previous: SealRow | bool | None = False,
) -> SealRow | None:
    """Seal one save's rows inside its (open) transaction (``previous``: the last
    seal if the caller knows it, else it is read); returns the seal."""
    if not rows:
        return None
    if previous is False:
        previous = sqlite_last_seal(cursor, events_table)
    seal = sealer.seal(previous, rows)  # type: ignore[arg-type]
    statement = _INSERTS.get(events_table)
    if statement is None:
        statement = _INSERTS[events_table] = (
            f"INSERT INTO {seals_table(events_table)} VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
    cursor.execute(statement, seal)  # a SealRow is the row, field for field
    return seal


#: the seal INSERT statement by events table
_INSERTS: dict[str, str] = {}


def hex_id(oid: Any) -> str:
    if isinstance(oid, UUID):
        return oid.hex
    text = str(oid)
    return text if len(text) == 32 else UUID(text).hex


def stored_rows(ids: Sequence[int], stored_events: Sequence[StoredEvent]) -> list[SealedRow]:
    return [
        (i, hex_id(s.originator_id), s.originator_version, s.topic, bytes(s.state))
        for i, s in zip(ids, stored_events, strict=True)
    ]


# -- in memory --------------------------------------------------------------------------------


class SealingPOPORecorder(POPOApplicationRecorder):
    """eventsourcing's in-memory application recorder, sealing each save (R31)."""

    def __init__(self) -> None:
        super().__init__()
        self.sealer: Sealer | None = None
        self._seals: list[SealRow] = []

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self._database_lock:
            ids = self._insert_events(stored_events, **kwargs)
            if self.sealer is not None and ids:
                rows = stored_rows(ids, stored_events)
                self._seals.append(self.sealer.seal(self.last_seal(), rows))
        self._notify_listeners()
        return ids

    def last_seal(self) -> SealRow | None:
        with self._database_lock:
            return self._seals[-1] if self._seals else None

    def seal_rows(self, after: int | None, limit: int) -> list[SealRow]:
        with self._database_lock:
            if after is None:
                return self._seals[::-1][:limit]
            return [s for s in self._seals if s.seq > after][:limit]

    def sealed_rows(self, after: int, limit: int) -> list[SealedRow]:
        with self._database_lock:
            page = self._stored_events[after : after + limit]
            return [
                (after + i + 1, hex_id(s.originator_id), s.originator_version, s.topic, s.state)
                for i, s in enumerate(page)
            ]


#: the PostgreSQL recorder's topic (its module imports psycopg: only named here)
POSTGRES_TOPIC = "esmc_licensing.adapters.sealing_postgres:SealingPostgresRecorder"


def recorder_topic(module: str) -> str | None:
    """The recorder the application uses for a persistence module (None: eventsourcing's)."""
    if module.endswith("sqlite"):
        from .sqlite_recorder import TOPIC

        return TOPIC
    if module.endswith("postgres"):
        return POSTGRES_TOPIC
    return None


# -- streaming what verification reads ----------------------------------------------------------


def iter_seals(recorder: Any) -> Iterator[SealRow | HistoryProblem]:
    """Every per-save seal in order, a page at a time (a problem if they cannot be read)."""
    after = 0
    while True:
        try:
            page = recorder.seal_rows(after, PAGE)
        except Exception as e:
            text = _one_line(e)
            if "no such table" in text or "does not exist" in text:
                # a store from before per-save sealing, or its seals table dropped:
                # either way no seals, and SealingStarted tells the two apart
                return
            yield HistoryProblem(None, "unreadable", f"the seals cannot be read: {text}")
            return
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].seq


def iter_rows(recorder: Any) -> Iterator[SealedRow | HistoryProblem]:
    """Every stored event as a sealed row, in position order, a page at a time."""
    return itertools.chain.from_iterable(_row_pages(recorder))


def _row_pages(recorder: Any) -> Iterator[Sequence[SealedRow | HistoryProblem]]:
    after = 0
    while True:
        try:
            page = recorder.sealed_rows(after, PAGE)
        except Exception as e:
            text = f"the stored events cannot be read: {_one_line(e)}"
            yield [HistoryProblem(None, "unreadable", text)]
            return
        yield page
        if len(page) < PAGE:
            return
        after = page[-1][0]


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def sqlite_sealed_rows(cursor: Any, events_table: str, after: int, limit: int) -> list[SealedRow]:
    cursor.row_factory = None
    rows: list[SealedRow] = cursor.execute(
        # CAST: a state edited by hand may have become text; hash its bytes
        "SELECT rowid, originator_id, originator_version, topic, CAST(state AS BLOB) "
        f"FROM {events_table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
        (after, limit),
    ).fetchall()
    if rows and len(rows[0][1]) != 32:  # pragma: no cover - ids written as text elsewhere
        rows = [(r[0], hex_id(r[1]), r[2], r[3], r[4]) for r in rows]
    return rows


def sqlite_seal_rows(
    cursor: Any, events_table: str, after: int | None, limit: int
) -> list[SealRow]:
    cursor.row_factory = None
    cols = (
        "SELECT seq, first, last, positions, key_id, digests, chain "
        f"FROM {seals_table(events_table)} "
    )
    if after is None:
        found = cursor.execute(cols + "ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
    else:
        found = cursor.execute(
            cols + "WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
    return [seal_row(r) for r in found]


__all__ = [
    "POSTGRES_TOPIC",
    "SealingPOPORecorder",
    "iter_rows",
    "iter_seals",
    "seals_table",
    "sqlite_create_statement",
    "sqlite_seal",
]
