"""R31: every save is sealed as it is recorded; tampering is detected and named.

The tampering is done as an attacker with write access to the database would:
raw SQL on the events and seals tables of SQLite and PostgreSQL, without the
seal key. The end of the log (or all of it) deleted is detected against a
receipt.
"""

from __future__ import annotations

import base64
import hmac
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import Notification
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esmc_licensing import LicenseManagement, Permission, PermissionDenied, seals
from esmc_licensing.adapters import sealing
from esmc_licensing.keyring import Keyring, generate_key, key_id, write_key_file
from esmc_licensing.seals import Receipt, SealKeyMissing
from esmc_licensing.testing import stores
from esmc_licensing.testing.strategies import World, commands

from .conftest import AppFactory, branch_story, issue, recorded

KEY = generate_key()
KEY_TEXT = base64.b64encode(KEY).decode()


@contextmanager
def _sql(app: LicenseManagement, env: dict[str, str]) -> Iterator[tuple[Any, str, str, str]]:
    """A raw connection: (connection, events table, seals table, position column)."""
    events = app._core.recorder.events_table_name  # type: ignore[attr-defined]
    seals_table = app._core.recorder.seals_table_name  # type: ignore[attr-defined]
    if env["PERSISTENCE_MODULE"].endswith("sqlite"):
        conn = sqlite3.connect(env["SQLITE_DBNAME"])
        try:
            yield conn, events, seals_table, "rowid"
            conn.commit()
        finally:
            conn.close()
    else:
        import psycopg

        schema = env["POSTGRES_SCHEMA"]
        with psycopg.connect(
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            dbname=env["POSTGRES_DBNAME"],
            user=env["POSTGRES_USER"],
            autocommit=True,
        ) as conn:
            yield conn, f'"{schema}".{events}', f'"{schema}".{seals_table}', "notification_id"


def _in_column(app: LicenseManagement) -> bool:
    """Whether the store keeps its seals on the events' rows (SQLite stores made
    by this version) rather than in a seals table."""
    return bool(getattr(app._core.recorder, "seals_in_events_table", False))


#: deletes every seal, whichever the layout
_NO_SEALS = {True: ("UPDATE {events} SET seal = NULL", ()), False: ("DELETE FROM {seals}", ())}


def _p(env: dict[str, str]) -> str:
    return "?" if env["PERSISTENCE_MODULE"].endswith("sqlite") else "%s"


def _tamper(app: LicenseManagement, env: dict[str, str], *statements: tuple[str, tuple]) -> None:
    """Run SQL with ``{events}``, ``{seals}``, ``{pos}`` and ``{p}`` filled in."""
    with _sql(app, env) as (conn, events, seal_table, pos):
        for statement, params in statements:
            text = statement.format(events=events, seals=seal_table, pos=pos, p=_p(env))
            conn.execute(text, params)


def _rows(app: LicenseManagement, env: dict[str, str], sql: str, params: tuple = ()) -> list:
    with _sql(app, env) as (conn, events, seal_table, pos):
        text = sql.format(events=events, seals=seal_table, pos=pos, p=_p(env))
        return list(conn.execute(text, params).fetchall())


@pytest.fixture
def sealed_app(make_app: AppFactory, vendor, store_env) -> LicenseManagement:
    store_env["ESMC_SEAL_KEY"] = KEY_TEXT
    app = make_app()
    story = branch_story(app)
    for i in range(4):
        app.add_license_key(app.administrator, issue(vendor, f"3AB-C12-D3{i}", owner=f"O{i % 2}"))
    pool = app.pools(app.administrator)[0]
    app.move_pools(app.administrator, [pool.pool_id], story.sydney)
    return app


def _position_of(app: LicenseManagement, topic: str) -> int:
    for n in app._core.recorder.select_notifications(start=None, limit=10_000):
        if n.topic == topic:
            return n.id
    raise AssertionError(topic)


def _found(app: LicenseManagement, receipt: Receipt | None = None) -> list[tuple[Any, str]]:
    return [(p.position, p.kind) for p in app.verify_history(app.administrator, receipt).problems]


BOTH = pytest.mark.parametrize("store_env", ["sqlite", "postgres"], indirect=True)


def test_r31_untouched_history_verifies_from_first_event_to_last(
    sealed_app: LicenseManagement,
) -> None:
    report = sealed_app.verify_history(sealed_app.administrator)
    end = recorded(sealed_app)
    assert report.ok, str(report)
    assert (report.checked, report.sealed_up_to, report.unsealed) == (end, end, 0)
    assert "sealed up to position" in str(report)


@BOTH
def test_r31_altered_event_is_named(sealed_app: LicenseManagement, store_env) -> None:
    target = _position_of(sealed_app, "PoolMoved")
    _tamper(sealed_app, store_env, ("UPDATE {events} SET state = {p} WHERE {pos} = {p}",
                                    (b"{}", target)))
    report = sealed_app.verify_history(sealed_app.administrator)
    assert [(x.position, x.kind) for x in report.problems] == [(target, "altered")]
    assert "PoolMoved" in report.problems[0].detail


@BOTH
def test_r31_removed_event_is_named(sealed_app: LicenseManagement, store_env) -> None:
    target = _position_of(sealed_app, "LicenseAdded")
    _tamper(sealed_app, store_env, ("DELETE FROM {events} WHERE {pos} = {p}", (target,)))
    assert (target, "removed") in _found(sealed_app)


@BOTH
def test_r31_reordered_events_are_named(sealed_app: LicenseManagement, store_env) -> None:
    first = _position_of(sealed_app, "GroupCreated")
    second = first + 1  # the next GroupCreated of the same directory aggregate
    rows = {
        r[0]: r[1:]
        for r in _rows(sealed_app, store_env,
                       "SELECT {pos}, topic, state FROM {events} WHERE {pos} IN ({p}, {p})",
                       (first, second))
    }
    _tamper(sealed_app, store_env, *[
        ("UPDATE {events} SET topic = {p}, state = {p} WHERE {pos} = {p}",
         (*rows[there], here))
        for here, there in ((first, second), (second, first))
    ])
    assert {(first, "altered"), (second, "altered")} <= set(_found(sealed_app))


@BOTH
def test_r31_event_put_in_place_of_another_is_named(
    sealed_app: LicenseManagement, store_env
) -> None:
    """An "insert" into the middle of the log: a row replaced by a forged one."""
    target = _position_of(sealed_app, "PoolMoved")
    seal = ", seal" if _in_column(sealed_app) else ""  # the row's seal is put back too
    (row,) = _rows(sealed_app, store_env,
                   "SELECT originator_id, originator_version, topic, state, {pos}" + seal
                   + " FROM {events} WHERE {pos} = {p}", (target,))
    _tamper(
        sealed_app, store_env,
        ("DELETE FROM {events} WHERE {pos} = {p}", (target,)),
        ("INSERT INTO {events} (originator_id, originator_version, topic, state, {pos}"
         + seal + ") VALUES (" + ", ".join(["{p}"] * len(row)) + ")", tuple(row)),
    )
    # the same bytes at the same place pass: nothing changed
    assert _found(sealed_app) == []
    forged = bytes(row[3]) + b" "
    _tamper(sealed_app, store_env,
            ("UPDATE {events} SET state = {p} WHERE {pos} = {p}", (forged, target)))
    assert _found(sealed_app) == [(target, "altered")]


@BOTH
def test_r31_forged_permission_appended_by_administrator_is_named(
    sealed_app: LicenseManagement, store_env
) -> None:
    """The issue's case: a branch user granted WRITE on All "by Administrator",
    appended after everything else, verified clean before per-save sealing."""
    app = sealed_app
    larry = app.user_named("Larry")
    (row,) = _rows(app, store_env,
                   "SELECT originator_id, originator_version, state FROM {events} "
                   "WHERE topic = 'PermissionGranted' ORDER BY {pos} DESC LIMIT 1")
    (last_version,) = _rows(app, store_env,
                            "SELECT MAX(originator_version) FROM {events} "
                            "WHERE originator_id = {p}", (row[0],))[0]
    state = bytes(row[2])
    forged = state.replace(str(app.user_named("Makio")).encode(), str(larry).encode())
    forged = forged.replace(b'"permission":1', b'"permission":3')
    _tamper(app, store_env, ("INSERT INTO {events} (originator_id, originator_version, "
                             "topic, state) VALUES ({p}, {p}, 'PermissionGranted', {p})",
                             (row[0], last_version + 1, forged)))
    end = recorded(app)
    report = app.verify_history(app.administrator)
    assert [(x.position, x.kind) for x in report.problems] == [(end, "unsealed")]
    # and a receipt taken now does not make it sealed: it stays named
    receipt = app.seal_history(app.administrator)
    assert (end, "unsealed") in _found(app, receipt)


@BOTH
def test_r31_deleted_seals_are_detected(sealed_app: LicenseManagement, store_env) -> None:
    """The issue's case: seals deleted, then a license's units rewritten."""
    target = _position_of(sealed_app, "LicenseAdded")
    (state,) = _rows(sealed_app, store_env, "SELECT state FROM {events} WHERE {pos} = {p}",
                     (target,))[0]
    _tamper(
        sealed_app, store_env,
        _NO_SEALS[_in_column(sealed_app)],
        ("UPDATE {events} SET state = {p} WHERE {pos} = {p}",
         (bytes(state).replace(b'"units":10', b'"units":99'), target)),
    )
    report = sealed_app.verify_history(sealed_app.administrator)
    assert not report.ok
    assert [(x.position, x.kind) for x in report.problems] == [(1, "unsealed")]
    assert f"1..{recorded(sealed_app)}" in report.problems[0].detail


@pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)
def test_r31_a_whole_save_deleted_with_its_seal_is_named(
    sealed_app: LicenseManagement, store_env
) -> None:
    """SQLite: a save's seal is on its last row, so deleting every row of a save
    deletes its seal too. SQLite numbers events without gaps: the gap is named."""
    app = sealed_app
    assert _in_column(app)
    added = _position_of(app, "LicenseAdded")
    ((last, stored),) = _rows(app, store_env,
                              "SELECT rowid, seal FROM {events} WHERE rowid >= ? AND "
                              "seal IS NOT NULL ORDER BY rowid LIMIT 1", (added,))
    first = sealing.decode_seal(stored).first
    _tamper(app, store_env, ("DELETE FROM {events} WHERE rowid BETWEEN ? AND ?", (first, last)))
    found = _found(app)
    assert (first, "removed") in found
    assert "seal-removed" in {kind for _, kind in found}


@BOTH
def test_r31_one_deleted_seal_is_named(sealed_app: LicenseManagement, store_env) -> None:
    added = _position_of(sealed_app, "LicenseAdded")  # a save in the middle of the log
    if _in_column(sealed_app):
        ((last, stored),) = _rows(sealed_app, store_env,
                                  "SELECT rowid, seal FROM {events} WHERE rowid >= ? AND "
                                  "seal IS NOT NULL ORDER BY rowid LIMIT 1", (added,))
        first = sealing.decode_seal(stored).first
        _tamper(sealed_app, store_env,
                ("UPDATE {events} SET seal = NULL WHERE rowid = ?", (last,)))
    else:
        ((first,),) = _rows(sealed_app, store_env,
                            "SELECT first FROM {seals} WHERE first <= {p} AND last >= {p}",
                            (added, added))
        _tamper(sealed_app, store_env, ("DELETE FROM {seals} WHERE first = {p}", (first,)))
    found = _found(sealed_app)
    assert (first, "unsealed") in found
    assert "seal-removed" in {kind for _, kind in found}


@BOTH
def test_r31_tampered_seal_is_named(sealed_app: LicenseManagement, store_env) -> None:
    target = _position_of(sealed_app, "PoolMoved")
    if _in_column(sealed_app):
        ((stored,),) = _rows(sealed_app, store_env,
                             "SELECT seal FROM {events} WHERE rowid = ?", (target,))
        forged = sealing.decode_seal(stored)._replace(chain="0" * 64)
        _tamper(sealed_app, store_env, ("UPDATE {events} SET seal = ? WHERE rowid = ?",
                                        (sealing.encode_seal(forged), target)))
    else:
        _tamper(sealed_app, store_env, ("UPDATE {seals} SET chain = {p} WHERE last = {p}",
                                        ("0" * 64, target)))
    assert (target, "seal-altered") in _found(sealed_app)


@BOTH
def test_r31_the_seal_marker_cannot_be_removed_unnoticed(
    sealed_app: LicenseManagement, store_env
) -> None:
    """Seals and the SealingStarted event both deleted: the directory's versions
    then start past 1, which verification names."""
    marker = _position_of(sealed_app, "SealingStarted")
    _tamper(sealed_app, store_env, _NO_SEALS[_in_column(sealed_app)],
            ("DELETE FROM {events} WHERE {pos} = {p}", (marker,)))
    assert "removed" in {kind for _, kind in _found(sealed_app)}


@BOTH
def test_r31_deleted_tail_is_detected_with_a_receipt(
    sealed_app: LicenseManagement, store_env
) -> None:
    app = sealed_app
    receipt = app.seal_history(app.administrator)
    cut = _position_of(app, "PoolMoved")
    # (on the events' rows, their seals go with them)
    _tamper(app, store_env, ("DELETE FROM {events} WHERE {pos} >= {p}", (cut,)),
            *([] if _in_column(app) else [("DELETE FROM {seals} WHERE last >= {p}", (cut,))]))
    # with the key alone a shorter history looks whole: that is what receipts are for
    assert app.verify_history(app.administrator).ok
    report = app.verify_history(app.administrator, receipt)
    assert [(x.position, x.kind) for x in report.problems] == [(receipt.position, "truncated")]
    assert "end was deleted" in report.problems[0].detail


@BOTH
def test_r31_emptied_table_is_detected_with_a_receipt(
    sealed_app: LicenseManagement, store_env
) -> None:
    app = sealed_app
    receipt = app.seal_history(app.administrator)
    _tamper(app, store_env, ("DELETE FROM {events}", ()),
            *([] if _in_column(app) else [("DELETE FROM {seals}", ())]))
    report = app.verify_history(app.administrator, receipt)
    assert (receipt.position, "truncated") in [(x.position, x.kind) for x in report.problems]
    assert report.checked == 0


@BOTH
def test_r31_dropped_table_is_detected_with_a_receipt(
    sealed_app: LicenseManagement, store_env
) -> None:
    app = sealed_app
    receipt = app.seal_history(app.administrator)
    _tamper(app, store_env, ("DROP TABLE {events}", ()),
            *([] if _in_column(app) else [("DROP TABLE {seals}", ())]))
    kinds = {kind for _, kind in _found(app, receipt)}
    assert {"truncated", "unreadable"} <= kinds
    app.close()
    # and without the application (it could not open a store without its table)
    report = seals.verify_store(store_env, receipt=receipt)
    assert {"truncated", "unreadable"} <= {p.kind for p in report.problems}


def test_r31_receipt_round_trips_and_a_forged_one_is_named(
    sealed_app: LicenseManagement,
) -> None:
    app = sealed_app
    receipt = app.seal_history(app.administrator)
    again = Receipt.from_bytes(receipt.to_bytes())
    assert again == receipt
    assert app.verify_history(app.administrator, again).ok
    forged = Receipt.from_bytes(receipt.to_bytes().replace(
        f'"position": {receipt.position}'.encode(), b'"position": 1'))
    assert "receipt-invalid" in {kind for _, kind in _found(app, forged)}
    with pytest.raises(Exception, match="not a history receipt"):
        Receipt.from_bytes(b"hello")


@BOTH
def test_r31_two_writers_on_one_store_keep_one_chain(
    sealed_app: LicenseManagement, make_app: AppFactory, vendor
) -> None:
    """Each writer remembers the seal it made last; saves by the other in between
    must make it read the chain's end again, never fork it."""
    other = make_app()
    for i in range(6):
        app = sealed_app if i % 3 else other
        app.add_license_key(app.administrator, issue(vendor, f"9AB-C12-D3{i}"))
    report = sealed_app.verify_history(sealed_app.administrator)
    assert report.ok, str(report)
    assert report.sealed_up_to == recorded(sealed_app)


@BOTH
def test_r31_a_save_in_conflict_after_another_writer_sealed_writes_nothing(
    sealed_app: LicenseManagement, make_app: AppFactory, store_env
) -> None:
    """A writer seals after the seal it made last; when the other writer sealed
    since, it reads the chain's end again -- and a save that conflicts on a
    version still writes nothing, seal included."""
    from uuid import uuid4

    from eventsourcing.persistence import IntegrityError, StoredEvent

    def event(oid: Any, version: int) -> StoredEvent:
        return StoredEvent(originator_id=oid, originator_version=version, topic="T", state=b"{}")

    mine, theirs = sealed_app._core.recorder, make_app()._core.recorder
    oid = uuid4()
    mine.insert_events([event(oid, 1)])
    theirs.insert_events([event(uuid4(), 1)])
    before = recorded(sealed_app)
    with pytest.raises(IntegrityError):
        mine.insert_events([event(uuid4(), 1), event(oid, 1)])
    assert recorded(sealed_app) == before
    theirs.insert_events([event(uuid4(), 1)])
    mine.insert_events([event(oid, 2)])
    report = seals.verify_store(store_env, ring=Keyring.of("seal", KEY))
    assert report.ok, str(report)
    assert report.sealed_up_to == recorded(sealed_app)


# -- keys ------------------------------------------------------------------------------------


def test_r31_no_default_key_sealing_is_refused_with_how_to_configure(app: LicenseManagement):
    before = recorded(app)
    with pytest.raises(SealKeyMissing, match="ESMC_SEAL_KEY") as refused:
        app.seal_history(app.administrator)
    assert "ESMC_SEAL_KEY_FILE" in str(refused.value)
    assert recorded(app) == before
    report = app.verify_history(app.administrator)
    assert report.ok and report.unsealed == before and report.sealed_up_to == 0
    assert "NOT sealed" in str(report)


@BOTH
def test_r31_a_sealed_store_refuses_unsealed_saves(sealed_app: LicenseManagement,
                                                   store_env, make_app: AppFactory) -> None:
    del store_env["ESMC_SEAL_KEY"]
    keyless = make_app()
    before = recorded(keyless)
    with pytest.raises(SealKeyMissing, match="seals every save"):
        keyless.create_group(keyless.administrator, "Elsewhere")
    assert recorded(keyless) == before
    # it still reads, and verifying says the seals' key is missing
    assert keyless.licenses(keyless.administrator)
    report = keyless.verify_history(keyless.administrator)
    assert [p.kind for p in report.problems] == ["wrong-key"]


@BOTH
def test_r31_wrong_key_is_named_once_not_as_every_event_altered(
    sealed_app: LicenseManagement, store_env
) -> None:
    sealed_app.close()
    other = Keyring.of("seal", generate_key())
    report = seals.verify_store(store_env, ring=other)
    assert [p.kind for p in report.problems] == ["wrong-key"]
    assert f"wrong key (id {key_id(KEY)})" in report.problems[0].detail


@BOTH
def test_r31_rotation_keeps_old_seals_verifiable(
    make_app: AppFactory, vendor, store_env, tmp_path: Path
) -> None:
    path = tmp_path / "seal.key"
    ring = Keyring.of("seal", KEY)
    write_key_file(path, ring)
    store_env["ESMC_SEAL_KEY_FILE"] = str(path)
    app = make_app()
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D30"))
    old_receipt = app.seal_history(app.administrator)
    rotated = ring.rotated()
    write_key_file(path, rotated)
    app.close()
    app = make_app()  # reopened with the rotated key file
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D31"))
    report = app.verify_history(app.administrator, old_receipt)
    assert report.ok, str(report)
    assert set(report.key_ids) == {ring.current_id, rotated.current_id}
    assert app.seal_history(app.administrator).key_id == rotated.current_id


# -- rights (R31) ----------------------------------------------------------------------------


def test_r31_only_an_administrator_or_read_on_all_seals_and_verifies(
    sealed_app: LicenseManagement,
) -> None:
    app = sealed_app
    john = app.user_named("John")
    for attempt in (lambda: app.seal_history(john), lambda: app.verify_history(john)):
        with pytest.raises(PermissionDenied) as denied:
            attempt()
        assert str(recorded(app)) not in str(denied.value)  # learns nothing, not even a count
    auditor = app.create_user(app.administrator, "Auditor", app.all_group)
    app.grant(app.administrator, auditor, app.all_group, Permission.READ)
    assert app.verify_history(auditor, app.seal_history(auditor)).ok


# -- stores from earlier versions ------------------------------------------------------------


@BOTH
def test_r31_saves_before_sealing_started_are_reported_as_not_sealed(
    make_app: AppFactory, vendor, store_env
) -> None:
    app = make_app()
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D30"))
    before = recorded(app)
    app.close()
    store_env["ESMC_SEAL_KEY"] = KEY_TEXT
    app = make_app()
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D31"))
    report = app.verify_history(app.administrator)
    assert report.ok, str(report)
    assert (report.unsealed, report.not_sealed_before) == (before, before + 1)
    assert f"not sealed before position {before + 1}" in str(report)


# -- the property ----------------------------------------------------------------------------


#: how each kind of tampering changes one stored row, and what verification must name
_ROW_TAMPERING = {
    "state": ("UPDATE {events} SET state = state || {space} WHERE {pos} = {p}", "altered"),
    "topic": ("UPDATE {events} SET topic = topic || 'x' WHERE {pos} = {p}", "altered"),
    "version": ("UPDATE {events} SET originator_version = originator_version + 1000 "
                "WHERE {pos} = {p}", "altered"),
    "delete": ("DELETE FROM {events} WHERE {pos} = {p}", "removed"),
}


def _tampered_one_row_is_named(env: dict[str, str], sequence: list, data: st.DataObject) -> None:
    from esmc_licensing import Adapters, InMemoryActivationServer, ManualClock

    from .conftest import START

    env = {**env, "ESMC_SEAL_KEY": KEY_TEXT}
    vendor = InMemoryActivationServer(clock=ManualClock(START))
    app = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor,
                                                       clock=vendor.clock))
    try:
        World(app, vendor).run_all(sequence)
        admin = app.administrator
        assert app.verify_history(admin).ok
        receipt = app.seal_history(admin)
        end = recorded(app)
        target = data.draw(st.integers(1, end), label="position")
        how = data.draw(st.sampled_from(sorted(_ROW_TAMPERING)), label="how")
        statement, expected = _ROW_TAMPERING[how]
        space = "x'20'" if env["PERSISTENCE_MODULE"].endswith("sqlite") else "'\\x20'::bytea"
        _tamper(app, env, (statement.replace("{space}", space), (target,)))
        report = app.verify_history(admin, receipt)
        assert not report.ok
        # the last event deleted is a deleted end: with seals on the events' rows
        # its seal goes with it, and the receipt names it
        named = {expected, "truncated"} if (how, target) == ("delete", end) else {expected}
        found = [(p.position, p.kind) for p in report.problems]
        assert any((target, kind) in found for kind in named), found
    finally:
        app.close()


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sequence=commands(max_size=12), data=st.data())
def test_r31_any_one_tampered_row_is_named_and_untouched_history_passes(
    sequence: list, data: st.DataObject
) -> None:
    """SQLite: for random command sequences and one stored row tampered with
    (its bytes, topic or version changed, or the row deleted), verification
    names that position; untouched, the history verifies."""
    with tempfile.TemporaryDirectory() as folder:
        _tampered_one_row_is_named(stores.sqlite_env(Path(folder) / "t.db"), sequence, data)


@settings(max_examples=max(5, settings().max_examples // 2), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sequence=commands(max_size=12), data=st.data())
def test_r31_any_one_tampered_row_is_named_on_postgresql(
    postgres_ready: None, sequence: list, data: st.DataObject
) -> None:
    """The same property on PostgreSQL, a fresh schema per example (fewer
    examples: each makes and drops a schema)."""
    with stores.postgres_schema() as schema:
        _tampered_one_row_is_named(stores.postgres_env(schema), sequence, data)


@pytest.fixture
def postgres_ready() -> None:
    from .conftest import _postgres_or_skip

    _postgres_or_skip()


# -- digests ---------------------------------------------------------------------------------


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
def test_r31_seal_digests_are_the_documented_hashes(key: bytes, rows: list) -> None:
    """Per-save seals digest each event with SHA-256 of
    "position|originator (32 hex digits)|version|topic|" + state, first 16 bytes,
    hash the save's rows as one, and chain both with HMAC-SHA256 -- computed from
    the key's precomputed states; legacy seals (earlier versions) used
    HMAC-SHA256 with the id as eventsourcing printed it, first 8 bytes, for any
    key length (keys over 64 bytes are hashed first)."""
    import hashlib

    expected = b"".join(
        hashlib.sha256(f"{i}|{o.hex}|{v}|{t}|".encode() + s).digest()[:16]
        for i, o, v, t, s in rows
    )
    assert seals.row_digests([(i, o.hex, v, t, s) for i, o, v, t, s in rows]) == expected
    whole = seals.rows_hash([(i, o.hex, v, t, s) for i, o, v, t, s in rows])
    assert whole == hashlib.sha256(b"".join(
        f"{i}|{o.hex}|{v}|{t}|{len(s)}|".encode() + s for i, o, v, t, s in rows)).digest()
    chain = seals.seal_chain(key, 3, 1, 2, "", "abc", "prev", whole, expected)
    assert chain == hmac.new(key, b"3|1|2||abc|prev|" + whole + expected, "sha256").hexdigest()
    if rows:  # the sealer computes both in one pass: the same bytes
        sealed = seals.Sealer(Keyring.of("seal", key)).seal(
            None, sorted((i, o.hex, v, t, s) for i, o, v, t, s in rows)
        )
        ordered = sorted((i, o.hex, v, t, s) for i, o, v, t, s in rows)
        assert sealed.digests == seals.row_digests(ordered)
        assert sealed.chain == seals.seal_chain(
            key, 1, ordered[0][0], ordered[-1][0], sealed.positions, key_id(key), "",
            seals.rows_hash(ordered), sealed.digests,
        )
    notifications = [
        Notification(originator_id=o, originator_version=v, topic=t, state=s, id=i)
        for i, o, v, t, s in rows
    ]
    legacy = "".join(
        hmac.digest(key, f"{n.id}|{n.originator_id}|{n.originator_version}|{n.topic}|".encode()
                    + n.state, "sha256")[:8].hex()
        for n in notifications
    )
    assert seals.digests(key, notifications) == legacy
    assert [seals.digest(key, n) for n in notifications] == list(seals.split_digests(legacy))


@pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)
def test_r31_seals_of_earlier_versions_keep_verifying(
    make_app: AppFactory, vendor, store_env, clock
) -> None:
    """A store sealed the old way (HistorySealed events every N events, with the
    built-in key when none was set) verifies: its old seals are checked, the
    saves after them are sealed per save, and tampering under an old seal is
    still named."""
    from esmc_licensing.domain.events import HistorySealed
    from esmc_licensing.domain.ids import SEALS_ID

    app = make_app()
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D30"))
    rows = list(app._core.recorder.select_notifications(start=1, limit=1000))
    key = seals.LEGACY_BUILTIN_KEY
    positions = tuple(n.id for n in rows)
    digests = seals.digests(key, rows)
    legacy = HistorySealed(originator_id=SEALS_ID, originator_version=1, timestamp=clock.now(),
                           actor="system", positions=positions, digests=digests,
                           chain=seals.chain(key, "", positions, digests))
    app._core._save_events([legacy])
    old_end = recorded(app)
    app.close()
    store_env["ESMC_SEAL_KEY"] = KEY_TEXT
    app = make_app()
    app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D31"))
    report = app.verify_history(app.administrator)
    assert report.ok, str(report)
    assert "legacy built-in" in report.key_ids and key_id(KEY) in report.key_ids
    assert (report.unsealed, report.not_sealed_before) == (1, old_end + 1)  # the old seal itself
    target = positions[-1]
    _tamper(app, store_env, ("UPDATE {events} SET state = state || x'20' WHERE {pos} = {p}",
                             (target,)))
    assert _found(app) == [(target, "altered")]


def test_r31_a_store_without_a_seals_table_opens_when_tables_are_not_created(
    tmp_path: Path,
) -> None:
    """A store from before per-save sealing, opened without creating tables (as a
    read-only store is), has no seals table: it opens and verifies as unsealed."""
    env = stores.sqlite_env(tmp_path / "old.db")
    LicenseManagement(env=env).close()
    with sqlite3.connect(tmp_path / "old.db") as conn:  # neither seals table nor column
        conn.execute("DROP TABLE IF EXISTS stored_events_seals")
        conn.execute("ALTER TABLE stored_events DROP COLUMN seal")
    app = LicenseManagement(env={**env, "CREATE_TABLE": "no"})
    try:
        report = app.verify_history(app.administrator)
        assert report.ok and report.unsealed == recorded(app) and "NOT sealed" in str(report)
    finally:
        app.close()


@pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)
def test_r31_a_damaged_last_seal_is_named_and_no_save_chains_after_it(
    sealed_app: LicenseManagement, make_app: AppFactory, store_env
) -> None:
    """The store still opens and verifies (naming the seal); a command is refused
    with a message saying why, and nothing is recorded."""
    from esmc_licensing.seals import SealUnreadable

    end = recorded(sealed_app)
    sealed_app.close()
    _tamper(sealed_app, store_env, ("UPDATE {events} SET seal = x'00' WHERE rowid = ?", (end,)))
    app = make_app()
    assert (end, "seal-altered") in _found(app)
    with pytest.raises(SealUnreadable, match=f"last seal, at position {end}, is damaged"):
        app.create_group(app.administrator, "After the damage")
    assert recorded(app) == end
