"""A PostgreSQL store on the command line (issue 13): the schema named by
``?schema=`` is created when a command records something, and a connection that
fails says why (refused port, unknown database, unknown user), exit 3, without
``--debug``. Against the real server (skipped without it unless
``ESMC_REQUIRE_SERVICES`` is set, like every PostgreSQL test).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner, Result

from esmc_licensing import cli
from esmc_licensing.testing import stores

from .cli_support import js, ok, refused

USER, HOST, PORT, DB = (stores.POSTGRES_USER, stores.POSTGRES_HOST, stores.POSTGRES_PORT,
                        stores.POSTGRES_DB)
ENV: dict[str, str | None] = {
    "ESMC_LICENSING_STORE": None, "ESMC_LICENSING_USER": None, "ESMC_CONFIG": None,
    "ESMC_ACTIVATION_URL": None, "ESMC_SEAL_KEY": None, "ESMC_SEAL_KEY_FILE": None,
    "ESMC_DATA_KEY": stores.TEST_DATA_KEY, "COLUMNS": "200",
}


def run(store: str, *args: str) -> Result:
    return CliRunner().invoke(cli.app, [*args, "--store", store], env=ENV)


@pytest.fixture
def new_schema(postgres_env: dict[str, str]) -> Iterator[str]:
    """A schema name nobody created yet (dropped afterwards)."""
    name = f"esmc_new_{uuid.uuid4().hex[:12]}"
    yield name
    conninfo = f"host={HOST} port={PORT} dbname={DB} user={USER}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _schema_exists(name: str) -> bool:
    conninfo = f"host={HOST} port={PORT} dbname={DB} user={USER}"
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                            (name,)).fetchone() is not None


def test_a_missing_schema_is_created_by_a_command_that_records(new_schema: str) -> None:
    store = f"postgresql://{USER}@{HOST}:{PORT}/{DB}?schema={new_schema}"
    refused(run(store, "licenses"), 3, "no schema", new_schema, "a query does not create")
    assert not _schema_exists(new_schema)
    group = js(run(store, "create-group", "Lab", "--json"))
    assert _schema_exists(new_schema)
    assert group["path"] == "All/Lab"  # type: ignore[index]
    assert [g["path"] for g in js(run(store, "groups", "--json"))] == ["All", "All/Lab"]  # type: ignore[union-attr]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def test_api_exit_3_connection_failures_say_why(postgres_env: dict[str, str]) -> None:
    schema = postgres_env["POSTGRES_SCHEMA"]
    port = _free_port()
    cases = (
        (f"postgresql://{USER}@{HOST}:{port}/{DB}?schema={schema}",
         ("connection refused", f"{HOST}:{port}")),
        (f"postgresql://{USER}@{HOST}:{PORT}/no_such_db_13?schema={schema}",
         ("no database 'no_such_db_13'",)),
        (f"postgresql://no_such_user_13@{HOST}:{PORT}/{DB}?schema={schema}",
         ("no user (role) 'no_such_user_13'",)),
    )
    for store, fragments in cases:
        for command in (("licenses",), ("create-group", "Lab")):
            err = refused(run(store, *command), 3, "cannot open the store", *fragments)
            assert "couldn't get a connection" not in err
    good = f"postgresql://{USER}@{HOST}:{PORT}/{DB}?schema={schema}"
    ok(run(good, "create-group", "Lab"))
