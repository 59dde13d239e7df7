"""R31: the stored history can be verified; tampering is detected and named."""

from __future__ import annotations

import hmac
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eventsourcing.persistence import Notification
from hypothesis import given, settings
from hypothesis import strategies as st

from esmc_licensing import LicenseManagement, seals

from .conftest import AppFactory, branch_story, issue


@contextmanager
def _sql(app: LicenseManagement, env: dict[str, str]) -> Iterator[tuple[Any, str, str]]:
    """A raw connection to the store, the events table and its position column."""
    table = app.recorder.events_table_name  # type: ignore[attr-defined]
    if env["PERSISTENCE_MODULE"].endswith("sqlite"):
        conn = sqlite3.connect(env["SQLITE_DBNAME"])
        try:
            yield conn, table, "rowid"
            conn.commit()
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            dbname=env["POSTGRES_DBNAME"],
            user=env["POSTGRES_USER"],
            autocommit=True,
        ) as conn:
            yield conn, f'"{env["POSTGRES_SCHEMA"]}".{table}', "notification_id"


def _param(env: dict[str, str]) -> str:
    return "?" if env["PERSISTENCE_MODULE"].endswith("sqlite") else "%s"


@pytest.fixture
def sealed_app(make_app: AppFactory, vendor) -> LicenseManagement:
    app = make_app()
    story = branch_story(app)
    for i in range(4):
        app.add_license_key(app.administrator, issue(vendor, f"3AB-C12-D3{i}", owner=f"O{i % 2}"))
    pool = app.pools(app.administrator)[0]
    app.move_pools(app.administrator, [pool.pool_id], story.sydney)
    app.seal_history()
    return app


def _position_of(app: LicenseManagement, topic: str) -> int:
    for n in app.recorder.select_notifications(start=None, limit=10_000):
        if n.topic == topic:
            return n.id
    raise AssertionError(topic)


def test_r31_untouched_history_verifies(sealed_app: LicenseManagement) -> None:
    report = sealed_app.verify_history()
    assert report.ok, str(report)
    assert report.checked == sealed_app.recorder.max_notification_id()
    assert report.unsealed == 1  # the last seal itself is sealed by the next one


def test_r31_seals_are_written_automatically(make_app: AppFactory, vendor, store_env) -> None:
    store_env["ESMC_SEAL_EVERY"] = "5"  # the setting, as given in env
    app = make_app()
    for i in range(4):
        app.add_license_key(app.administrator, issue(vendor, f"3AB-C12-D3{i}"))
    report = app.verify_history()
    assert report.ok and report.sealed_up_to >= 5
    assert report.unsealed < 5 + 3


def _tamper(
    app: LicenseManagement, env: dict[str, str], change: Callable[[Any, str, str, str], None]
) -> None:
    with _sql(app, env) as (conn, table, pos):
        change(conn, table, pos, _param(env))


@pytest.mark.parametrize("store_env", ["sqlite", "postgres"], indirect=True)
def test_r31_altered_event_is_named(sealed_app: LicenseManagement, store_env) -> None:
    target = _position_of(sealed_app, "PoolMoved")

    def change(conn: Any, table: str, pos: str, p: str) -> None:
        conn.execute(f"UPDATE {table} SET state = {p} WHERE {pos} = {p}", (b"{}", target))

    _tamper(sealed_app, store_env, change)
    report = sealed_app.verify_history()
    assert [(x.position, x.kind) for x in report.problems] == [(target, "altered")]
    assert "PoolMoved" in report.problems[0].detail


@pytest.mark.parametrize("store_env", ["sqlite", "postgres"], indirect=True)
def test_r31_removed_event_is_named(sealed_app: LicenseManagement, store_env) -> None:
    target = _position_of(sealed_app, "LicenseAdded")

    def change(conn: Any, table: str, pos: str, p: str) -> None:
        conn.execute(f"DELETE FROM {table} WHERE {pos} = {p}", (target,))

    _tamper(sealed_app, store_env, change)
    report = sealed_app.verify_history()
    assert (target, "removed") in [(x.position, x.kind) for x in report.problems]


@pytest.mark.parametrize("store_env", ["sqlite", "postgres"], indirect=True)
def test_r31_reordered_events_are_named(sealed_app: LicenseManagement, store_env) -> None:
    first = _position_of(sealed_app, "GroupCreated")
    second = first + 1  # the next GroupCreated of the same directory aggregate

    def change(conn: Any, table: str, pos: str, p: str) -> None:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                f"SELECT {pos}, topic, state FROM {table} WHERE {pos} IN ({p}, {p})",
                (first, second),
            ).fetchall()
        }
        for here, there in ((first, second), (second, first)):
            topic, state = rows[there]
            conn.execute(
                f"UPDATE {table} SET topic = {p}, state = {p} WHERE {pos} = {p}",
                (topic, state, here),
            )

    _tamper(sealed_app, store_env, change)
    found = {(x.position, x.kind) for x in sealed_app.verify_history().problems}
    assert {(first, "altered"), (second, "altered")} <= found


@pytest.mark.parametrize("store_env", ["sqlite", "postgres"], indirect=True)
def test_r31_tampered_seal_is_named(sealed_app: LicenseManagement, store_env) -> None:
    target = _position_of(sealed_app, "HistorySealed")

    def change(conn: Any, table: str, pos: str, p: str) -> None:
        select = f"SELECT state FROM {table} WHERE {pos} = {p}"
        (state,) = conn.execute(select, (target,)).fetchone()
        forged = bytes(state).replace(b'"chain":"', b'"chain":"0', 1)
        conn.execute(f"UPDATE {table} SET state = {p} WHERE {pos} = {p}", (forged, target))

    _tamper(sealed_app, store_env, change)
    kinds = {x.kind for x in sealed_app.verify_history().problems}
    assert "seal-altered" in kinds


@pytest.mark.parametrize("store_env", ["memory"], indirect=True)
def test_r31_altered_event_in_memory_store_is_named(make_app: AppFactory, vendor) -> None:
    import dataclasses

    app = make_app()
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D34", units=10))
    app.seal_history()
    stored = app.recorder._stored_events  # type: ignore[attr-defined]
    i = next(i for i, s in enumerate(stored) if s.topic == "LicenseAdded")
    stored[i] = dataclasses.replace(
        stored[i], state=stored[i].state.replace(b'"units":10', b'"units":99')
    )
    report = app.verify_history()
    assert [x.kind for x in report.problems] == ["altered"]
    assert "LicenseAdded" in str(report)


@pytest.mark.parametrize("store_env", ["sqlite", "postgres"], indirect=True)
def test_r31_a_store_too_damaged_to_open_can_still_be_verified(
    sealed_app: LicenseManagement, store_env
) -> None:
    from esmc_licensing.seals import verify_store

    target = _position_of(sealed_app, "PoolMoved")

    def change(conn: Any, table: str, pos: str, p: str) -> None:
        conn.execute(f"UPDATE {table} SET state = {p} WHERE {pos} = {p}", (b"not json", target))

    moved = sealed_app.pools(sealed_app.administrator)[0].public_ids[0]
    _tamper(sealed_app, store_env, change)
    sealed_app.close()
    reopened = LicenseManagement(env=store_env)
    # queries read the views, so the store still opens and lists; the event
    # itself no longer loads when a history reads it
    assert reopened.licenses(sealed_app.administrator)
    with pytest.raises(Exception, match="PoolMoved"):
        reopened.history(sealed_app.administrator, moved)
    reopened.close()
    report = verify_store(store_env)
    assert [(x.position, x.kind) for x in report.problems] == [(target, "altered")]


@settings(max_examples=50, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=100),
    rows=st.lists(
        st.tuples(
            st.integers(1, 2**40), st.uuids(), st.integers(1, 10**6),
            st.text(min_size=1, max_size=30), st.binary(max_size=600),
        ),
        max_size=5,
    ),
)
def test_r31_seal_digests_are_the_documented_hmac(key: bytes, rows: list) -> None:
    """``seals.digests`` precomputes HMAC's keyed states; it must equal plain
    HMAC-SHA256 of "id|originator|version|topic|" + state, first 8 bytes, hex,
    for any key length (keys over 64 bytes are hashed first)."""
    notifications = [
        Notification(originator_id=o, originator_version=v, topic=t, state=s, id=i)
        for i, o, v, t, s in rows
    ]
    expected = "".join(
        hmac.digest(key, f"{n.id}|{n.originator_id}|{n.originator_version}|{n.topic}|".encode()
                    + n.state, "sha256")[:8].hex()
        for n in notifications
    )
    assert seals.digests(key, notifications) == expected
    assert [seals.digest(key, n) for n in notifications] == list(seals.split_digests(expected))
