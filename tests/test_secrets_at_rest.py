"""R32 secrets at rest: no license key or password in any byte a store keeps.

A scripted session (keys, an offline file, accounts with passwords, a task
through Redis, snapshots after every event) runs on a SQLite file with a views
file of its own and on a PostgreSQL schema; then every byte of the files, every
row of the schema and a ``DUMP`` of every Redis key are searched for the
secrets. Reopened with the data key, the same session reads back the same.
Rotation and forgetting keys ("crypto-shredding") are checked on the stores and
as a property of the field cipher.
"""

from __future__ import annotations

import base64
import os
import stat
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esmc_licensing import (
    AccountKind,
    Adapters,
    Credentials,
    DataKeyMissing,
    Ema2AccountType,
    InMemoryAccounts,
    InMemoryActivationServer,
    LicenseManagement,
    ManualClock,
    PublicId,
    SecretUnavailable,
)
from esmc_licensing.adapters.field_cipher import FieldCipher, sealed_key_id
from esmc_licensing.adapters.redis_agents import RedisAgent, RedisAgents, ResultConsumer, connect
from esmc_licensing.domain.client_tasks import AgentResult
from esmc_licensing.domain.ids import UnavailableLicenseKey
from esmc_licensing.keyring import Keyring, key_id
from esmc_licensing.projections.runner import rebuild_views
from esmc_licensing.testing import stores

from .conftest import START, issue

MSP = Credentials("msp@example.com", "S3cr3t-P4ssw0rd!")
EBA = Credentials("admin@acme.example", "eba-Passw0rd-42")
AGENT_KEY = base64.b64encode(b"agent key for tests only, public").decode()
REDIS_URL = os.environ.get("ESMC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _require(reason: str | None) -> None:
    if reason is not None:
        if stores.REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)


def _redis_reason() -> str | None:
    try:
        client = connect(REDIS_URL)
        client.ping()
        client.close()
        return None
    except Exception as e:
        return f"Redis is not reachable at {REDIS_URL}: {type(e).__name__}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A store of the kind asked, with its views, snapshots after every event."""
    if request.param == "sqlite":
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "store.db"),
            "ESMC_VIEWS": f"sqlite:{tmp_path / 'views.db'}",
        }
        yield {"kind": "sqlite", "env": env, "dir": tmp_path}
        return
    _require(stores.postgres_unavailable_reason())
    with stores.postgres_schema() as schema:
        env = {k: v for k, v in stores.postgres_env(schema).items() if k != "ESMC_DATA_KEY"}
        yield {"kind": "postgres", "env": env, "schema": schema}


@pytest.fixture
def redis_prefix() -> Iterator[tuple[Any, str]]:
    _require(_redis_reason())
    client = connect(REDIS_URL)
    prefix = f"esmc-test-{uuid.uuid4().hex[:12]}"
    yield client, prefix
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _open(env: dict[str, str], vendor: Any, accounts: Any, agents: Any = None) -> LicenseManagement:
    return LicenseManagement(
        env=env,
        adapters=Adapters(
            activation_server=vendor, accounts=accounts, agents=agents, clock=vendor.clock
        ),
    )


def _everything_kept(backend: dict[str, Any], client: Any, prefix: str) -> bytes:
    """Every byte the stores keep: files (with WAL and shared memory), every row
    of every table of the schema, a DUMP of every Redis key of the session."""
    out = []
    if backend["kind"] == "sqlite":
        for path in sorted(backend["dir"].iterdir()):
            if path.is_file():
                out.append(path.read_bytes())
    else:
        import psycopg

        conninfo = (
            f"host={stores.POSTGRES_HOST} port={stores.POSTGRES_PORT} "
            f"dbname={stores.POSTGRES_DB} user={stores.POSTGRES_USER}"
        )
        with psycopg.connect(conninfo) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (backend["schema"],),
            ).fetchall()
            assert len(tables) >= 5, tables  # the events, the views, snapshots, tracking
            for (table,) in tables:
                rows = conn.execute(f'SELECT t::text FROM "{backend["schema"]}"."{table}" t')
                out.extend(row[0].encode() for row in rows)
                # bytea columns print as hex in ::text: decode them too
                blobs = conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s AND data_type = 'bytea'",
                    (backend["schema"], table),
                ).fetchall()
                for (column,) in blobs:
                    for (blob,) in conn.execute(
                        f'SELECT "{column}" FROM "{backend["schema"]}"."{table}"'
                    ):
                        out.append(bytes(blob or b""))
    import redis as redis_lib

    raw = redis_lib.Redis.from_url(REDIS_URL)
    keys = list(raw.scan_iter(f"{prefix}:*"))
    assert keys, "the session left nothing in Redis to search"
    for key in keys:
        out.append(raw.dump(key) or b"")
    raw.close()
    return b"\n".join(out)


def test_r32_no_license_key_or_password_in_any_byte_of_the_stores_views_or_redis(
    backend: dict[str, Any], redis_prefix: tuple[Any, str]
) -> None:
    client, prefix = redis_prefix
    env = {**backend["env"], "ESMC_DATA_KEY": _new_key(), "ESMC_SNAPSHOT_EVERY": "1"}
    clock = ManualClock(START)
    vendor = InMemoryActivationServer(clock=clock)
    accounts = InMemoryAccounts(vendor)
    keys = [issue(vendor, f"3AB-C12-D3{i}", owner=f"Owner {i}") for i in range(4)]
    issue(vendor, "4AB-C12-D34", owner="Offline Owner")
    for pid in ("C01-000-001", "C01-000-002", "E01-000-001"):
        keys.append(issue(vendor, pid, owner=""))
    accounts.add_ema2_account(
        MSP, Ema2AccountType.MSP, companies={"Contoso": ["C01-000-001", "C01-000-002"]}
    )
    accounts.add_eba_account(EBA, "Acme", ["E01-000-001"])

    agents = RedisAgents(client, prefix=prefix, agent_key=AGENT_KEY)
    app = _open(env, vendor, accounts, agents)
    admin = app.administrator
    pids = [app.add_license_key(admin, key) for key in keys[:4]]
    app.add_offline_license_file(admin, vendor.offline_file("4AB-C12-D34", app.console_token))
    app.connect_account(admin, AccountKind.EMA2, MSP)
    app.connect_account(admin, AccountKind.EBA, EBA)
    computers = [
        app.register_computer(
            admin, f"pc-{i}", app.all_group, fingerprint=f"fp-{i}", products=[vendor_product()]
        )
        for i in range(2)
    ]
    task_id = app.run_product_activation(admin, pids[0], computers)
    consumer = ResultConsumer(app, client, prefix=prefix, consumer="c1", agent_key=AGENT_KEY)
    for cid in computers[:1]:  # one result settled (trimmed), one order left in its stream
        secret = agents.agent_secret(str(cid))
        agent = RedisAgent(client, str(cid), prefix=prefix, secret=secret)
        [order] = agent.receive()
        assert order.key is not None and order.key.reveal() == keys[0]
        agent.report(AgentResult(task_id, cid, succeeded=True))
    assert consumer.run_once() == 1
    for _ in range(3):  # more events on the same aggregates: snapshots hold secrets too
        app.synchronize(admin)
        clock.advance(timedelta(days=1))
    before = _answers(app, pids)
    app.close()

    kept = _everything_kept(backend, client, prefix)
    # the search sees the stored facts: the non-secret ones are there to be found
    assert b"3AB-C12-D30" in kept and MSP.username.encode() in kept
    secrets = [*keys, MSP.reveal_password(), EBA.reveal_password()]
    for secret in secrets:
        assert secret.encode() not in kept, "a secret is kept in plain text"
        assert secret.replace("-", "").encode() not in kept
    if backend["kind"] == "sqlite":
        for path in backend["dir"].iterdir():
            if path.suffix in (".db", ".db-wal", ".db-shm") or path.name.endswith(("-wal", "-shm")):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    again = _open(env, vendor, accounts, RedisAgents(client, prefix=prefix, agent_key=AGENT_KEY))
    try:
        assert _answers(again, pids) == before
        for pid, key in zip(pids, keys[:4], strict=True):
            assert again.installer_license(again.administrator, pid).key.reveal() == key
        assert again.synchronize(again.administrator).ok
    finally:
        again.close()


def vendor_product() -> str:
    from .conftest import PRODUCT

    return PRODUCT


def _answers(app: LicenseManagement, pids: list[Any]) -> Any:
    admin = app.administrator
    return (
        [(v.public_id, v.key_last4, v.units, v.owner) for v in app.licenses(admin)],
        [(a.kind, a.username, a.connected) for a in app.accounts(admin)],
        [app.license(admin, p) for p in pids],
    )


# -- rotation and crypto-shredding ---------------------------------------------------------


def _app(env: dict[str, str], vendor: InMemoryActivationServer, accounts: Any) -> LicenseManagement:
    return LicenseManagement(
        env=env, adapters=Adapters(activation_server=vendor, accounts=accounts, clock=vendor.clock)
    )


def _stored_key_ids(app: LicenseManagement, topic: str) -> list[str | None]:
    out = []
    for n in app._core.recorder.select_notifications(start=None, limit=1_000_000):
        if n.topic == topic:
            data = orjson.loads(n.state)
            value = data.get("key") if topic == "LicenseAdded" else data["credentials"]["password"]
            out.append(sealed_key_id(value))
    return out


def test_r32_rotation_seals_new_secrets_with_the_new_key_and_old_ones_stay_readable(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    old, new = _new_key(), _new_key()
    vendor = InMemoryActivationServer(clock=ManualClock(START))
    accounts = InMemoryAccounts(vendor)
    first_key = issue(vendor, "3AB-C12-D34")
    second_key = issue(vendor, "3AB-C12-D35")
    env = {**sqlite_env, "ESMC_DATA_KEY": old}
    app = _app(env, vendor, accounts)
    a = app.add_license_key(app.administrator, first_key)
    app.close()

    rotated = _app({**env, "ESMC_DATA_KEY": f"{old},{new}"}, vendor, accounts)
    b = rotated.add_license_key(rotated.administrator, second_key)
    old_id, new_id = key_id(base64.b64decode(old)), key_id(base64.b64decode(new))
    assert _stored_key_ids(rotated, "LicenseAdded") == [old_id, new_id]
    admin = rotated.administrator
    assert rotated.installer_license(admin, a).key.reveal() == first_key
    assert rotated.installer_license(admin, b).key.reveal() == second_key
    rotated.close()


@pytest.fixture(params=["sqlite", "postgres"])
def lasting_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A store that outlives its application (in memory, nothing is reopened)."""
    if request.param == "sqlite":
        yield stores.sqlite_env(tmp_path / "s.db")
        return
    _require(stores.postgres_unavailable_reason())
    with stores.postgres_schema() as schema:
        yield stores.postgres_env(schema)


def test_r32_forgetting_a_key_leaves_every_other_fact_and_reports_the_secret_unavailable(
    lasting_env: dict[str, str],
) -> None:
    store_env = lasting_env
    old, new = _new_key(), _new_key()
    vendor = InMemoryActivationServer(clock=ManualClock(START))
    accounts = InMemoryAccounts(vendor)
    shredded_key = issue(vendor, "3AB-C12-D34", owner="Shredded")
    kept_key = issue(vendor, "3AB-C12-D35", owner="Kept")
    issue(vendor, "E01-000-001")
    accounts.add_eba_account(EBA, "Acme", ["E01-000-001"])
    env = {**store_env, "ESMC_DATA_KEY": old, "ESMC_SNAPSHOT_EVERY": "1"}
    app = _app(env, vendor, accounts)
    shredded = app.add_license_key(app.administrator, shredded_key)
    app.connect_account(app.administrator, AccountKind.EBA, EBA)
    app.close()
    app = _app({**env, "ESMC_DATA_KEY": f"{old},{new}"}, vendor, accounts)
    kept = app.add_license_key(app.administrator, kept_key)
    facts = [app.license(app.administrator, p) for p in (shredded, kept)]
    app.close()

    # the old key forgotten: only the new one is configured
    forgot = _app({**env, "ESMC_DATA_KEY": new}, vendor, accounts)
    admin = forgot.administrator
    try:
        assert [forgot.license(admin, p) for p in (shredded, kept)] == facts
        with pytest.raises(SecretUnavailable, match=key_id(base64.b64decode(old))):
            forgot.installer_license(admin, shredded).key.reveal()
        assert forgot.installer_license(admin, kept).key.reveal() == kept_key
        assert [(a.username, a.connected) for a in forgot.accounts(admin)] == [(EBA.username, True)]
        report = forgot.synchronize(admin)
        assert not report.ok  # the account's password is gone: its sync fails, clearly
        assert "connect the account again" in " ".join(f.reason for f in report.failed)
        # reconnecting with the password brings it back under the current key
        forgot.connect_account(admin, AccountKind.EBA, EBA)
        assert forgot.synchronize(admin).ok
    finally:
        forgot.close()
    # views rebuilt without the old key: the shredded key shows as unavailable ("")
    rebuild_views({**env, "ESMC_DATA_KEY": new})
    again = _app({**env, "ESMC_DATA_KEY": new}, vendor, accounts)
    try:
        views = {v.public_id: v for v in again.licenses(again.administrator)}
        assert views[shredded].key_last4 == ""
        assert views[kept].key_last4 == kept_key[-4:]
        assert attrs.evolve(views[shredded], key_last4=facts[0].key_last4) == facts[0]
    finally:
        again.close()


def test_r32_an_embedding_application_without_a_data_key_is_refused_before_recording_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # eventsourcing reads settings from the process's environment too: a data
    # key exported in the shell running the tests must not make this one pass
    monkeypatch.delenv("ESMC_DATA_KEY", raising=False)
    monkeypatch.delenv("ESMC_DATA_KEY_FILE", raising=False)
    vendor = InMemoryActivationServer(clock=ManualClock(START))
    key = issue(vendor, "3AB-C12-D34")
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "s.db")}
    app = _app(env, vendor, InMemoryAccounts(vendor))
    try:
        before = app._core.recorder.max_notification_id()
        with pytest.raises(DataKeyMissing, match="ESMC_DATA_KEY"):
            app.add_license_key(app.administrator, key)
        assert app._core.recorder.max_notification_id() == before
        assert app.licenses(app.administrator) == []
        # everything without a secret still works
        app.create_group(app.administrator, "Lab", app.all_group)
    finally:
        app.close()
    assert stat.S_IMODE((tmp_path / "s.db").stat().st_mode) == 0o600


def test_r32_an_in_memory_store_needs_no_data_key() -> None:
    vendor = InMemoryActivationServer(clock=ManualClock(START))
    app = _app({"PERSISTENCE_MODULE": "eventsourcing.popo"}, vendor, InMemoryAccounts(vendor))
    pid = app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D34"))
    assert app.installer_license(app.administrator, pid).key.reveal() == vendor.key_of(pid)


# -- the field cipher, as properties ---------------------------------------------------------

_keys = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=4, unique=True)


@given(keys=_keys, texts=st.lists(st.text(min_size=12), min_size=1, max_size=5), data=st.data())
def test_r32_a_sealed_secret_opens_exactly_when_its_key_is_held(
    keys: list[bytes], texts: list[str], data: st.DataObject
) -> None:
    ring = Keyring.of("data", *keys)
    # each text sealed under some rotation of the ring (the current key then)
    sealed = []
    for text in texts:
        upto = data.draw(st.integers(1, len(keys)))
        cipher = FieldCipher(Keyring.of("data", *keys[:upto]))
        sealed.append((text, cipher.seal(text, b"ctx"), key_id(keys[upto - 1])))
        assert text.encode() not in orjson.dumps(
            sealed[-1][1]
        )  # long enough not to occur by chance
    held = data.draw(st.sets(st.sampled_from(ring.ids), min_size=1))
    reader = FieldCipher(Keyring("data", tuple(e for e in ring if e[0] in held)))
    for text, value, kid in sealed:
        assert value["kid"] == kid
        assert reader.open(value, b"ctx") == (text if kid in held else None)
        assert reader.open(value, b"another place") is None  # bound to where it was written


def test_r32_unavailable_values_never_reveal_and_say_which_key() -> None:
    key = UnavailableLicenseKey("abc123")
    with pytest.raises(SecretUnavailable, match="abc123"):
        key.reveal()
    assert "abc123" in key.masked and "abc123" in repr(key)


# -- the command line: an older store, migrated; rotation and forgetting -------------------

PREVIOUS = Path(__file__).parent / "fixtures" / "store-8f60be7"
PREVIOUS_SECRETS = (
    "6YN4-7Q8W-60FU-3YNU-63HW",
    "8PZA-PCRD-RD33-BAY3-RK32",
    "C63L-MWVD-4FUA-JNDB-K8GG",
    "fixture-password",
)


def _previous_store(path: Path) -> None:
    """The store of the version before R32 (plain-text secrets in its rows)."""
    import sqlite3

    from esmc_licensing.projections.runner import LogReader

    LogReader(env=stores.sqlite_env(path)).close()  # eventsourcing's tables, empty
    rows = [
        orjson.loads(line)
        for line in PREVIOUS.with_suffix(".events.jsonl").read_text().splitlines()
    ]
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (
                    r["position"],
                    r["originator_id"],
                    r["originator_version"],
                    r["topic"],
                    r["state"].encode(),
                )
                for r in rows
            ],
        )
    conn.close()


def test_r32_migrate_secrets_restates_an_older_stores_secrets_then_rotation_and_forgetting(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from esmc_licensing import cli

    store = tmp_path / "old.db"
    _previous_store(store)
    runner = CliRunner()
    env: dict[str, str | None] = {
        name: None
        for name in (
            "ESMC_LICENSING_STORE",
            "ESMC_LICENSING_USER",
            "ESMC_DATA_KEY",
            "ESMC_DATA_KEY_FILE",
            "ESMC_CONFIG",
            "ESMC_CREDENTIALS_FILE",
            "ESMC_ACTIVATION_URL",
            "ESMC_ACCOUNTS_URL",
            "ESMC_SEAL_KEY",
        )
    }

    def run(*args: str) -> Any:
        result = runner.invoke(cli.app, ["--store", str(store), *args], env=env)
        for secret in PREVIOUS_SECRETS:
            assert secret not in result.output
        return result

    listed = run("licenses", "--json")
    assert listed.exit_code == 0, listed.output  # an older store reads without a key
    key_file = tmp_path / "old.db.datakey"
    assert not key_file.exists()  # an existing store gets no key made behind its back
    _plain_snapshot(store, "PRV-SDG-001")  # as an older version wrote snapshots
    assert PREVIOUS_SECRETS[1] in _snapshot_texts(store)

    migrated = run("migrate-secrets")
    assert migrated.exit_code == 0, migrated.output
    # two live licenses' keys and the account's password (a removed license has
    # no current key to re-state)
    assert "Re-stated 3 secret(s)" in migrated.stdout
    assert "Created the data key file" in migrated.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    snapshots = _snapshot_texts(store)
    assert snapshots and not any(secret in snapshots for secret in PREVIOUS_SECRETS)
    assert run("migrate-secrets").stdout.startswith("Re-stated 0 secret(s)")
    assert run("licenses", "--json").stdout == listed.stdout

    first = Keyring.of("x", *[k for _, k in _ring(key_file)]).current_id
    rotated = run("rotate-data-key")
    assert rotated.exit_code == 0 and first in rotated.stdout, rotated.output
    second = Keyring.of("x", *[k for _, k in _ring(key_file)]).current_id
    assert second != first
    assert run("migrate-secrets").stdout.startswith("Re-stated 3 secret(s)")

    assert run("forget-data-key", second, "--yes").exit_code == 2  # the current key
    unconfirmed = run("forget-data-key", first)
    assert unconfirmed.exit_code == 1 and "--yes" in unconfirmed.stderr
    assert run("forget-data-key", "nonexistent0").exit_code == 1
    forgot = run("forget-data-key", first, "--yes")
    assert forgot.exit_code == 0, forgot.output
    assert [kid for kid, _ in _ring(key_file)] == [second]
    # the current secrets were re-stated under the second key: nothing is lost
    assert run("migrate-secrets").stdout.startswith("Re-stated 0 secret(s)")
    assert run("licenses", "--json").stdout == listed.stdout
    # history is not rewritten: the rows from before R32 still hold their plain text
    assert PREVIOUS_SECRETS[0].encode() in store.read_bytes()


def _plain_snapshot(store: Path, public_id: str) -> None:
    """A snapshot with the license key in plain text, as versions before R32 wrote."""
    from esmc_licensing.adapters.mapper import converter
    from esmc_licensing.domain import license
    from esmc_licensing.domain.ids import license_aggregate_id

    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(store)}
    app = LicenseManagement(env=env)
    try:
        aggregate_id = license_aggregate_id(PublicId(public_id))
        state = app._core._load(
            aggregate_id, lambda: license.initial(PublicId(public_id)), license.evolve
        )
        plain = orjson.dumps(converter.unstructure(state, type(state))).decode()
        app._core.views.put_snapshot(aggregate_id, state.version, plain)
    finally:
        app.close()


def _snapshot_texts(store: Path) -> str:
    import sqlite3

    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT state FROM esmc_snapshots").fetchall()
    conn.close()
    return "\n".join(str(row[0]) for row in rows)


def _ring(path: Path) -> Keyring:
    from esmc_licensing.keyring import read_key_file

    return read_key_file(path, "data")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    # any text, after a marker that cannot be in the store by chance
    password=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=64).map(
        lambda text: "pw\u2603" + text
    )
)
def test_r32_any_password_and_key_recorded_leave_no_trace_in_the_store_file(
    tmp_path: Path, password: str
) -> None:
    where = Path(tempfile.mkdtemp(dir=tmp_path))
    vendor = InMemoryActivationServer(clock=ManualClock(START))
    accounts = InMemoryAccounts(vendor)
    key = issue(vendor, "3AB-C12-D34")
    issue(vendor, "E01-000-001")
    credentials = Credentials("someone@example.com", password)
    accounts.add_eba_account(credentials, "Acme", ["E01-000-001"])
    env = {**stores.sqlite_env(where / "s.db"), "ESMC_SNAPSHOT_EVERY": "1"}
    app = _app(env, vendor, accounts)
    app.add_license_key(app.administrator, key)
    app.connect_account(app.administrator, AccountKind.EBA, credentials)
    app.synchronize(app.administrator)
    app.close()
    kept = b"".join(p.read_bytes() for p in where.iterdir() if p.is_file())
    assert b"someone@example.com" in kept  # the facts are there to be found
    for secret in (key, password):
        assert secret.encode() not in kept
        assert orjson.dumps(secret)[1:-1] not in kept  # nor as JSON writes it
