"""Views in PostgreSQL tables, each batch written with its tracking record in one transaction.

The tables live in the event store's schema by default (``POSTGRES_SCHEMA``),
named ``esmc_view_*``. Two runners on one database cannot both apply a batch:
the tracking row is updated compare-and-set, and the loser's transaction
rolls back with ``IntegrityError``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from .store import SQLViewStore


class PostgresViewStore(SQLViewStore):
    placeholder = "%s"
    blob = "BYTEA"
    bigint = "BIGINT"

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        prefix: str = "esmc_view_",
        password: str | None = None,
    ) -> None:
        quoted = sql.Identifier(schema).as_string(None)
        super().__init__(f"{quoted}.{prefix}")
        self._index_prefix = prefix
        self.schema = schema
        self._lock = threading.RLock()
        self._conn = psycopg.connect(conninfo, autocommit=True, password=password)
        for attempt in range(3):  # racing CREATE TABLE IF NOT EXISTS can clash in the catalog
            try:
                with self._transaction(write=True) as c:
                    self.create_tables(c)
                break
            except psycopg.errors.UniqueViolation:
                if attempt == 2:
                    raise

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, prefix: str = "esmc_view_") -> PostgresViewStore:
        """From eventsourcing's ``POSTGRES_*`` settings (those an application uses)."""
        parts = {
            "host": env.get("POSTGRES_HOST", "127.0.0.1"),
            "port": env.get("POSTGRES_PORT", "5432"),
            "dbname": env.get("POSTGRES_DBNAME", "postgres"),
            "user": env.get("POSTGRES_USER", "postgres"),
        }
        timeout = env.get("POSTGRES_CONNECT_TIMEOUT")
        if timeout:
            parts["connect_timeout"] = timeout
        conninfo = " ".join(f"{k}={v}" for k, v in parts.items())
        return cls(
            conninfo,
            schema=env.get("POSTGRES_SCHEMA") or "public",
            password=env.get("POSTGRES_PASSWORD") or None,
            prefix=prefix,
        )

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:
        with self._lock, self._conn.transaction(), self._conn.cursor() as c:
            yield c

    def _is_integrity_error(self, e: BaseException) -> bool:
        return isinstance(e, psycopg.errors.IntegrityError)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"PostgresViewStore(schema={self.schema!r})"
