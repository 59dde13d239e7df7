"""The seals table beside the events, written in the save's own transaction (R31).

Each recorder the application uses (SQLite, PostgreSQL, in memory) holds a
``sealer`` (None: saves are not sealed) and, when it is set, writes one
:class:`~esmc_licensing.seals.SealRow` per save in the same transaction as
the save's events, after reading the previous seal there (writers are
serialised: SQLite's write lock, PostgreSQL's table lock on the events), so
the chain has no fork. Stored events are never rewritten: seals live in a
table of their own, ``<events table>_seals``.

On SQLite, a store created by this version keeps each save's seal in the
``seal`` column of the save's last event row instead (:func:`encode_seal`):
written by the same ``INSERT`` as the events, it costs no second b-tree
page per commit, which a seals table does (about 25 µs of a 250 µs
command). A store created earlier keeps its seals table; the layout is the
events table's, found once per recorder (:func:`sqlite_seal_column`).

They also read what verification streams: the events as sealed rows
(originator ids as 32 hex digits, whatever the column type) and the seals,
a page at a time.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from ..seals import HistoryProblem, SealedRow, Sealer, SealRow, SealUnreadable

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


#: the events table's column holding a save's seal, on the save's last row (SQLite)
SEAL_COLUMN = "seal"
#: the first bytes of a seal kept in the events table: the layout, versioned
_COLUMN_FORMAT = b"s1|"


def encode_seal(seal: SealRow) -> bytes:
    """A seal as the ``seal`` column holds it: its text fields, then the digests."""
    head = f"{seal.seq}|{seal.first}|{seal.last}|{seal.positions}|{seal.key_id}|{seal.chain}|"
    return _COLUMN_FORMAT + head.encode() + seal.digests


def decode_seal(blob: Any) -> SealRow:
    """The seal :func:`encode_seal` wrote (``ValueError`` if it is not one)."""
    data = bytes(blob)
    if not data.startswith(_COLUMN_FORMAT):
        raise ValueError("not a seal of this library")
    parts = data[len(_COLUMN_FORMAT) :].split(b"|", 6)
    if len(parts) != 7:
        raise ValueError("a seal's fields are missing")
    seq, first, last, positions, key_id, chain, digests = parts
    return SealRow(
        int(seq), int(first), int(last), positions.decode("ascii"), key_id.decode("ascii"),
        digests, chain.decode("ascii"),
    )


def sqlite_seal_column(cursor: Any, events_table: str) -> bool | None:
    """Whether the events table keeps the seals (None: there is no events table)."""
    columns = {r[1] for r in cursor.execute(f"PRAGMA table_info({events_table})")}
    return (SEAL_COLUMN in columns) if columns else None


def sqlite_events_create_statement(statement: str) -> str:
    """eventsourcing's events table, with the seal column (a new store)."""
    with_column = statement.replace("state BLOB, ", f"state BLOB, {SEAL_COLUMN} BLOB, ", 1)
    if with_column == statement:  # pragma: no cover - eventsourcing changed its table
        raise RuntimeError(f"cannot add the seal column to: {statement}")
    return with_column


def sqlite_column_last_seal(cursor: Any, events_table: str, marker: str) -> SealRow | None:
    """The last seal of a store that keeps them in its events table.

    Normally on the last row (one indexed step). When that row is unsealed,
    only a store whose directory recorded ``marker`` (``SealingStarted``) is
    searched further back, so an unsealed store costs two small reads, not
    a scan of its log.
    """
    row = cursor.execute(
        f"SELECT rowid, {SEAL_COLUMN} FROM {events_table} ORDER BY rowid DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    if row[1] is None:
        from ..domain.ids import DIRECTORY_ID

        started = cursor.execute(
            f"SELECT rowid FROM {events_table} WHERE originator_id = ? AND topic = ? LIMIT 1",
            (DIRECTORY_ID.hex, marker),
        ).fetchone()
        if started is None:
            return None
        row = cursor.execute(
            f"SELECT rowid, {SEAL_COLUMN} FROM {events_table} WHERE rowid >= ? "
            f"AND {SEAL_COLUMN} IS NOT NULL ORDER BY rowid DESC LIMIT 1",
            (started[0],),
        ).fetchone()
        if row is None:
            return None
    try:
        return decode_seal(row[1])
    except (ValueError, TypeError) as e:
        raise SealUnreadable(
            f"the store's last seal, at position {row[0]}, is damaged ({e}), so nothing can "
            "be sealed after it and nothing was recorded; `esmc-licensing verify-history` "
            "names the damage"
        ) from None


def sqlite_column_seal_rows(
    cursor: Any, events_table: str, after: int, limit: int
) -> list[tuple[int, Any]]:
    """(position, stored seal) of the sealed rows after a position, in order."""
    cursor.row_factory = None
    rows: list[tuple[int, Any]] = cursor.execute(
        f"SELECT rowid, {SEAL_COLUMN} FROM {events_table} WHERE rowid > ? "
        f"AND {SEAL_COLUMN} IS NOT NULL ORDER BY rowid LIMIT ?",
        (after, limit),
    ).fetchall()
    return rows


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
    """Every seal of a seals table in order, a page at a time (a problem if they
    cannot be read). Seals kept on the events' rows are read with the rows
    (:func:`log_and_seals`)."""
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


def _stored_seal(position: int, stored: Any) -> SealRow | HistoryProblem:
    """The seal kept on the row at ``position``, or what is wrong with it."""
    try:
        seal = decode_seal(stored)
    except (ValueError, TypeError) as e:
        return HistoryProblem(
            position, "seal-altered", f"the seal stored at this position is unreadable: {e}"
        )
    if seal.last != position:
        return HistoryProblem(
            position, "seal-altered",
            f"the seal stored at this position names positions {seal.first}..{seal.last}",
        )
    return seal


def log_and_seals(
    recorder: Any,
) -> tuple[Iterator[SealedRow | HistoryProblem], Iterator[SealRow | HistoryProblem]]:
    """What verification reads: every stored row and every per-save seal, in order.

    Where the seals are on the events' rows, one scan of the table gives both.
    """
    if getattr(recorder, "seals_in_events_table", False):
        scan = _OneScan(recorder)
        return scan.rows(), scan.seals()
    return iter_rows(recorder), iter_seals(recorder)


class _OneScan:
    """The rows and the seals of the column layout from one scan of the events table.

    Verification takes the seals one save ahead of the rows; a page read for
    either feeds both queues, so memory holds about a page. Where no seal
    follows for long (a log sealed only from some position on, or its seals
    deleted), the seals are looked for with a query of their own rather than
    holding every row read meanwhile.
    """

    #: rows held for the rows' reader before the seals are looked for apart
    AHEAD = 4 * PAGE

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.gapless = getattr(recorder, "positions_without_gaps", False)
        self.with_seals = True
        self.after = 0  # the last position the scan read
        self.done = False
        self.row_queue: collections.deque[SealedRow | HistoryProblem] = collections.deque()
        self.seal_queue: collections.deque[tuple[int, Any]] = collections.deque()
        #: seals up to this position are queued or given (None: all of them)
        self.seals_known: int | None = 0

    def _page(self) -> None:
        try:
            if self.with_seals:
                page = self.recorder.sealed_rows_and_seals(self.after, PAGE)
            else:
                page = self.recorder.sealed_rows(self.after, PAGE)
        except Exception as e:
            text = _one_line(e)
            if self.with_seals and "no such column" in text:
                # the seal column dropped: no seals (SealingStarted says there were)
                self.with_seals, self.seals_known = False, None
                return
            self.row_queue.append(
                HistoryProblem(None, "unreadable", f"the stored events cannot be read: {text}")
            )
            self.done = True
            return
        rows: Sequence[Any] = page
        if self.with_seals:
            known = self.seals_known
            for r in page:
                if r[5] is not None and known is not None and r[0] > known:
                    self.seal_queue.append((r[0], r[5]))
            rows = [r[:5] for r in page]
        if self.gapless and rows and rows[-1][0] - self.after != len(rows):
            rows = _with_gaps(self.after, rows)
        self.row_queue.extend(rows)
        if page:
            self.after = page[-1][0]
            if self.seals_known is not None:
                self.seals_known = max(self.seals_known, self.after)
        if len(page) < PAGE:
            self.done = True

    def rows(self) -> Iterator[SealedRow | HistoryProblem]:
        queue = self.row_queue
        while True:
            while queue:
                yield queue.popleft()
            if self.done:
                return
            self._page()

    def seals(self) -> Iterator[SealRow | HistoryProblem]:
        queue = self.seal_queue
        while True:
            while queue:
                yield _stored_seal(*queue.popleft())
            if self.seals_known is None or (self.done and not queue):
                return
            if len(self.row_queue) < self.AHEAD:
                self._page()
                continue
            # far ahead of the rows: the next seals by a query of their own
            try:
                found = self.recorder.column_seal_rows(self.seals_known, PAGE)
            except Exception as e:
                text = f"the seals cannot be read: {_one_line(e)}"
                yield HistoryProblem(None, "unreadable", text)
                return
            queue.extend(found)
            self.seals_known = found[-1][0] if len(found) == PAGE else None


def iter_rows(recorder: Any) -> Iterator[SealedRow | HistoryProblem]:
    """Every stored event as a sealed row, in position order, a page at a time."""
    return itertools.chain.from_iterable(_row_pages(recorder))


def _row_pages(recorder: Any) -> Iterator[Sequence[SealedRow | HistoryProblem]]:
    after = 0
    # SQLite numbers events without gaps (the highest position plus one): a gap
    # there is a deletion, found even when the seal naming it went with it
    gapless = getattr(recorder, "positions_without_gaps", False)
    while True:
        try:
            page = recorder.sealed_rows(after, PAGE)
        except Exception as e:
            text = f"the stored events cannot be read: {_one_line(e)}"
            yield [HistoryProblem(None, "unreadable", text)]
            return
        if gapless and page and page[-1][0] - after != len(page):
            page = _with_gaps(after, page)
        yield page
        if len(page) < PAGE:
            return
        after = page[-1][0]


def _with_gaps(after: int, page: Sequence[SealedRow]) -> list[SealedRow | HistoryProblem]:
    out: list[SealedRow | HistoryProblem] = []
    expected = after + 1
    for row in page:
        if row[0] > expected:
            missing = (
                f"position {expected} is" if row[0] == expected + 1
                else f"positions {expected}..{row[0] - 1} are"
            )
            out.append(HistoryProblem(
                expected, "removed",
                f"{missing} missing: SQLite numbers events without gaps, so they were deleted",
            ))
        out.append(row)
        expected = row[0] + 1
    return out


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def sqlite_sealed_rows_and_seals(
    cursor: Any, events_table: str, after: int, limit: int
) -> list[tuple[Any, ...]]:
    """As :func:`sqlite_sealed_rows`, each row with its ``seal`` column after it."""
    cursor.row_factory = None
    rows: list[tuple[Any, ...]] = cursor.execute(
        "SELECT rowid, originator_id, originator_version, topic, CAST(state AS BLOB), "
        f"{SEAL_COLUMN} FROM {events_table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
        (after, limit),
    ).fetchall()
    if rows and len(rows[0][1]) != 32:  # pragma: no cover - ids written as text elsewhere
        rows = [(r[0], hex_id(r[1]), *r[2:]) for r in rows]
    return rows


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
    "log_and_seals",
    "seals_table",
    "sqlite_create_statement",
    "sqlite_seal",
]
