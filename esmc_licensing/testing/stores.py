"""Event stores for tests: in memory, a SQLite file, a PostgreSQL schema.

PostgreSQL tests get a fresh schema each, dropped afterwards, so they can run
in parallel and leave nothing behind. When the server is absent they skip with
the reason, unless ``ESMC_REQUIRE_SERVICES=1`` (set by CI), where a missing
server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POSTGRES_HOST = os.environ.get("ESMC_TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_PORT = os.environ.get("ESMC_TEST_POSTGRES_PORT", "5432")
POSTGRES_DB = os.environ.get("ESMC_TEST_POSTGRES_DB", "test")
POSTGRES_USER = os.environ.get("ESMC_TEST_POSTGRES_USER", "postgres")
REQUIRE_SERVICES = os.environ.get("ESMC_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def postgres_unavailable_reason() -> str | None:
    """None when the test server answers, else why not."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a dependency of the package
        return "psycopg is not installed"
    try:
        with psycopg.connect(
            host=POSTGRES_HOST,
            port=POSTGRES_PORT,
            dbname=POSTGRES_DB,
            user=POSTGRES_USER,
            connect_timeout=3,
        ):
            return None
    except Exception as e:
        return (
            f"PostgreSQL is not reachable at {POSTGRES_HOST}:{POSTGRES_PORT} "
            f"(database {POSTGRES_DB!r}): {type(e).__name__}: {str(e).strip()[:200]}"
        )


@contextmanager
def postgres_schema() -> Iterator[str]:
    import psycopg

    schema = f"esmc_t_{uuid.uuid4().hex[:12]}"
    conninfo = (
        f"host={POSTGRES_HOST} port={POSTGRES_PORT} dbname={POSTGRES_DB} user={POSTGRES_USER}"
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


#: the data key (R32) of the file and PostgreSQL stores tests make: fixed, so
#: a test can reopen its store; for tests only (it is public in this source)
TEST_DATA_KEY = "dGVzdCBkYXRhIGtleSwgbmV2ZXIgZm9yIHByb2R1Y3Q="


def memory_env() -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def sqlite_env(path: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "ESMC_DATA_KEY": TEST_DATA_KEY,
    }


def postgres_env(schema: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": POSTGRES_DB,
        "POSTGRES_HOST": POSTGRES_HOST,
        "POSTGRES_PORT": POSTGRES_PORT,
        "POSTGRES_USER": POSTGRES_USER,
        "POSTGRES_PASSWORD": "",
        "POSTGRES_SCHEMA": schema,
        "ESMC_DATA_KEY": TEST_DATA_KEY,
        # Small pools: a test opens several applications, CI runs tests in parallel.
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "8",
    }
