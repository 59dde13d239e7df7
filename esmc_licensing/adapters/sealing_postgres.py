"""Per-save seals on PostgreSQL (R31); see :mod:`esmc_licensing.adapters.sealing`.

A module of its own so that psycopg is imported only for PostgreSQL stores.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from ..seals import SealedRow, Sealer, SealRow
from .sealing import hex_id, seal_row, seals_table, stored_rows


class SealingPostgresRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL application recorder, sealing each save (R31).

    The seal is written after the events' notification ids are known, on the
    same connection and in the same transaction, which already holds the
    events table's EXCLUSIVE lock: no other save can come between.

    The seal before it is the one this recorder committed last, without
    asking: the seal's number is the table's primary key, so when another
    writer has sealed since, the insert fails on it at the commit and the
    save is tried again once, reading the last seal in its transaction.
    Asking every time cost each save a round trip to the server (the rest
    of the seal's statements go with the commit's).

    The seal's ``INSERT`` also sends the save's notification
    (``pg_notify``), instead of eventsourcing's ``NOTIFY`` before the events:
    each statement costs psycopg about 90 µs in the client, more than the
    server spends inserting the seal, so a sealed save sends no more
    statements than an unsealed one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sealer: Sealer | None = None
        self.seals_table_name = seals_table(self.events_table_name)
        self._seals_ident = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(self.seals_table_name)
        )
        #: the seal this recorder committed last; the one a save in progress made
        self._last_seal: SealRow | None = None
        self._made = threading.local()
        # rendered once: composing them at every save costs more than sending them
        seals = self._seals_ident.as_string()
        self._select_last_seal = (
            f"SELECT seq, first, last, positions, key_id, digests, chain FROM {seals} "
            "ORDER BY seq DESC LIMIT 1"
        )
        self._insert_seal = (
            f"WITH sealed AS (INSERT INTO {seals} VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "RETURNING 1) SELECT pg_notify(%s, '') FROM sealed"
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0} (seq bigint PRIMARY KEY, first bigint NOT NULL, "
                "last bigint NOT NULL, positions text NOT NULL, key_id text NOT NULL, "
                "digests bytea NOT NULL, chain text NOT NULL)"
            ).format(self._seals_ident)
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if self.sealer is None:
            unsealed: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return unsealed
        if self.datastore.enable_db_functions:
            raise RuntimeError("POSTGRES_ENABLE_DB_FUNCTIONS cannot be used with sealed saves")
        known = self._last_seal
        self._made.seal = None
        try:
            positions: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
        except IntegrityError:
            self._last_seal = None
            if known is None:
                raise
            # another writer sealed since (or a version was taken: then this fails again)
            positions = super().insert_events(stored_events, **kwargs)
        made = self._made.seal
        if made is not None:
            self._last_seal = made
        return positions

    def _notify_channel(self, curs: Any) -> None:
        if self.sealer is None:
            super()._notify_channel(curs)
        # else the seal's statement notifies, in the same transaction

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        sealer = self.sealer
        if sealer is not None and ids:
            order = sorted(range(len(ids)), key=lambda i: ids[i])
            rows = stored_rows([ids[i] for i in order], [stored_events[i] for i in order])
            previous = self._last_seal
            if previous is None:
                curs.execute(self._select_last_seal)
                found = curs.fetchone()
                previous = None if found is None else seal_row(list(found.values()))
            seal = sealer.seal(previous, rows)
            # a SealRow: its fields in the table's column order, then the channel
            curs.execute(self._insert_seal, (*seal, self.channel_name), prepare=True)
            self._made.seal = seal
        return ids

    def last_seal(self) -> SealRow | None:
        found = self.seal_rows(None, 1)
        return found[0] if found else None

    def seal_rows(self, after: int | None, limit: int) -> list[SealRow]:
        """Seals after ``after`` (seq) in order; with None, the last ``limit`` ones."""
        cols = SQL("SELECT seq, first, last, positions, key_id, digests, chain FROM {0} ").format(
            self._seals_ident
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            if after is None:
                curs.execute(cols + SQL("ORDER BY seq DESC LIMIT %s"), (limit,))
            else:
                curs.execute(cols + SQL("WHERE seq > %s ORDER BY seq LIMIT %s"), (after, limit))
            return [seal_row(list(r.values())) for r in curs.fetchall()]

    def sealed_rows(self, after: int, limit: int) -> list[SealedRow]:
        statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {0}.{1} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (after, limit))
            return [
                (
                    r["notification_id"],
                    hex_id(r["originator_id"]),
                    r["originator_version"],
                    r["topic"],
                    bytes(r["state"]),
                )
                for r in curs.fetchall()
            ]


__all__ = ["SealingPostgresRecorder"]
