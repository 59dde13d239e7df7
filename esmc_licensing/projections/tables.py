"""Persistent, indexed views: SQL tables on SQLite (file or memory) and PostgreSQL.

The views are written by one fold (:mod:`.fold`) through the small storage
interface of :class:`ViewBatch` -- get an entity, put it, tag and untag a
target, record an audit reference -- and committed with the position of the
last event they include, in one transaction, compare-and-set on the previous
position: a crash never applies an event twice or skips one, and two
processes updating the same views cannot both apply the same events.

Each entity row keeps the aggregate's state as JSON (what the fold reads
back) beside the columns queries filter and join on: a license's pool, its
facts that decide its status (R8: expiration, units, used units, flags, so
the level filter runs in SQL against today's date), its type and product;
a pool's and a computer's group (visibility, R11/R14). A query joins
licenses to their pools and keeps the rows in the actor's visible groups,
so it touches what it returns, not the whole store.

The in-memory store uses the same SQL on an in-memory SQLite database: one
implementation of the views for every store, and the in-memory one as fast
as SQLite is.

The tables never hold a license key (R2: only a stand-in with its last four
characters) nor an account password. Snapshots of aggregates (what a command
loads in about a millisecond however long the aggregate's history) are kept
here too: derived data, like the views, rebuilt from the log when dropped.
"""

from __future__ import annotations

import functools
import itertools
import logging
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import attrs
import orjson

from ..adapters.mapper import decoder, state_encoder
from ..domain import account, computer, license, pool, saved_filters, task
from ..domain.filters import LicenseFilter
from ..domain.ids import ComputerId, GroupId, PoolId, PublicId, TaskId, UserId
from ..domain.status import Status, license_status
from ..domain.values import Policy, Source, StatusLevel, StatusReason
from ..keyring import create_private_file
from . import alerts as alert_fold
from .alerts import parse_stamp, stamp

log = logging.getLogger("esmc_licensing.views")

#: the layout of the tables; a store whose recorded layout differs is dropped
#: and rebuilt from the log (views are derived data)
SCHEMA_VERSION = 6
APPLICATION_NAME = "LicenseManagement"


def _mask_key(data: dict[str, Any]) -> dict[str, Any]:
    key = data.get("key")
    if key and isinstance(key, str):  # not an unavailable key's marker (R32)
        data["key"] = "0000-0000-0000-0000-" + str(key)[-4:]
    return data


def _no_credentials(data: dict[str, Any]) -> dict[str, Any]:
    data["credentials"] = None
    return data


def _flag(value: object) -> int:
    return 1 if value else 0


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _license_columns(s: license.LicenseState) -> tuple[Any, ...]:
    view = {
        "pool_id": _text(s.pool_id),
        "license_type": s.license_type.value,
        "product": s.product,
        "units": s.units,
        "used_units": s.used_units,
        "offline_units": s.offline_units,
        "subunits": s.subunits,
        "expires": None if s.expires is None else s.expires.isoformat(),
        "subscription": s.subscription,
        "owner": s.owner,
        "contact": s.contact,
        "source": None if s.source is None else s.source.value,
        "product_code": s.product_code,
        "license_user": s.license_user,
        "key_last4": s.key.last4 if s.key is not None else None,
        "registered": s.registered,
        "registration_url": s.registration_url,
        "suspended": s.suspended,
        "obsolete": s.obsolete,
    }
    return (
        _text(s.pool_id),
        _flag(s.exists and s.pool_id is not None and s.source is not None),
        view["source"],
        view["license_type"],
        s.product,
        s.product.casefold(),
        s.owner.casefold(),
        str(s.public_id).casefold(),
        s.units,
        s.used_units,
        view["expires"],
        _flag(s.suspended),
        _flag(s.registered),
        _flag(s.obsolete),
        orjson.dumps(view).decode(),
    )


@attrs.frozen
class Table:
    """How one aggregate kind is kept as rows."""

    kind: str
    name: str
    key: str
    state_type: type
    initial: Callable[[str], Any]
    #: (column name, SQL type) beside the key and the state
    columns: tuple[tuple[str, str], ...] = ()
    values: Callable[[Any], tuple[Any, ...]] = lambda s: ()
    scrub: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    indexes: tuple[str, ...] = ()
    #: rows carry ``changed``, the position of the batch that last wrote them,
    #: so a kept answer can be brought up to date by what changed since
    tracks_changes: bool = False


TABLES: Mapping[str, Table] = {
    t.kind: t
    for t in (
        Table(
            "license", "licenses", "public_id", license.LicenseState,
            lambda k: license.initial(PublicId(k)),
            (
                ("pool_id", "TEXT"), ("live", "INTEGER"), ("source", "TEXT"),
                ("license_type", "TEXT"), ("product", "TEXT"), ("product_cf", "TEXT"),
                ("owner_cf", "TEXT"), ("public_id_cf", "TEXT"), ("units", "BIGINT"),
                ("used_units", "BIGINT"), ("expires", "TEXT"), ("suspended", "INTEGER"),
                ("registered", "INTEGER"), ("obsolete", "INTEGER"), ("view", "TEXT"),
            ),
            _license_columns,
            _mask_key,
            ("pool_id", "source"),
            tracks_changes=True,
        ),
        Table(
            "pool", "pools", "pool_id", pool.PoolState, lambda k: pool.initial(PoolId(k)),
            (("group_id", "TEXT"), ("live", "INTEGER"), ("name_cf", "TEXT")),
            lambda s: (_text(s.group), _flag(s.exists and s.group is not None), s.name.casefold()),
            None,
            ("group_id",),
            tracks_changes=True,
        ),
        Table(
            "computer", "computers", "computer_id", computer.ComputerState,
            lambda k: computer.initial(ComputerId(k)),
            (("group_id", "TEXT"), ("live", "INTEGER"), ("name_cf", "TEXT")),
            lambda s: (_text(s.group), _flag(s.exists and s.group is not None), s.name.casefold()),
            None,
            ("group_id",),
        ),
        Table("task", "tasks", "task_id", task.TaskState, lambda k: task.initial(TaskId(k))),
        Table(
            "filters", "filters", "user_id", saved_filters.FiltersState,
            lambda k: saved_filters.initial(UserId(k)),
        ),
        Table(
            "account", "accounts", "account_id", account.AccountState,
            lambda k: account.initial(uuid.UUID(k)),
            (("connected", "INTEGER"),),
            lambda s: (_flag(s.connected),),
            _no_credentials,
        ),
    )
}

#: each table's state codec (the mapper's, generated per class), found on first
#: use: generating all of them compiles code, a cost every process paid at import
_UNSTRUCTURE: dict[str, Callable[[Any], Any]] = {}
_STRUCTURE: dict[str, Callable[[Any], Any]] = {}


def encode_row_state(table: Table, state: Any) -> str:
    hook = _UNSTRUCTURE.get(table.kind)
    if hook is None:
        hook = _UNSTRUCTURE[table.kind] = state_encoder(table.state_type)
    data = hook(state)
    if table.scrub is not None:
        data = table.scrub(data)
    return orjson.dumps(data).decode()


def decode_row_state(table: Table, data: str | bytes) -> Any:
    hook = _STRUCTURE.get(table.kind)
    if hook is None:
        hook = _STRUCTURE[table.kind] = decoder(table.state_type)
    return hook(orjson.loads(data))


# -- dialects ------------------------------------------------------------------------------


@attrs.frozen
class Dialect:
    name: str
    placeholder: str
    #: position of a needle in a text: (haystack, needle) -> SQL
    contains: Callable[[str, str], str]


SQLITE = Dialect("sqlite", "?", lambda hay, needle: f"instr({hay}, {needle}) > 0")
POSTGRES = Dialect("postgres", "%s", lambda hay, needle: f"strpos({hay}, {needle}) > 0")


#: the order alerts are delivered in (R35), as SQL and from a row of ``alert_rows``'s form
_KEY_COLUMNS = "(at, position, public_id, reason, entered)"


def _delivery_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """(at, position, public_id, reason, entered) of an alert row
    (alert_id, public_id, reason, entered, at, position)."""
    return (row[4], row[5], row[1], row[2], row[3])


class ViewBatch:
    """The storage interface the fold writes to, for one batch of events.

    Entities read in the batch are kept decoded until it is written, so an
    entity touched by many events of a batch is read and written once.
    ``seed`` hands it states the caller already holds (the command side's
    states just before its own events: the very rows the views hold).
    """

    def __init__(self, views: ViewStore, cursor: Any, cache: OrderedDict[Any, Any] | None) -> None:
        self._views = views
        self._c = cursor
        self._states: dict[tuple[str, str], Any] = {}
        #: entities known to have no row (looked for in bulk, not written since)
        self._absent: set[tuple[str, str]] = set()
        self._dirty: dict[tuple[str, str], Any] = {}
        self._refs: list[tuple[str, int]] = []
        self._tag_ops: list[tuple[str, str, str | None]] = []
        #: decoded states kept across batches (a single writer: rebuild, runner)
        self._cache = cache
        #: where the views stood when the batch began
        self.position = 0
        #: the last position folded into the batch (None: nothing to write)
        self.reached: int | None = None
        #: the alert fold's working state (R35, R36), made on first use
        self._alerting: _AlertBuffer | None = None
        #: id(event) -> (event, state before, state after) the command side folded
        self.folded: Mapping[int, tuple[Any, Any, Any]] = {}

    # -- the storage interface ---------------------------------------------------

    def get(self, kind: str, key: str) -> Any | None:
        k = (kind, key)
        state = self._states.get(k)
        if state is not None:
            return state
        if self._cache is not None:
            state = self._cache.get(k)
            if state is not None:
                self._states[k] = state
                return state
        if k in self._absent:
            return None
        table = TABLES[kind]
        row = self._views.fetch_one(
            self._c, f"SELECT state FROM {self._views.t(table.name)} WHERE {table.key} = {{}}",
            (key,),
        )
        if row is None:
            return None
        state = decode_row_state(table, row[0])
        self._states[k] = state
        return state

    def put(self, kind: str, key: str, state: Any) -> None:
        k = (kind, key)
        self._states[k] = state
        self._dirty[k] = state

    def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Read the rows of these entities that the batch does not hold yet, one
        query per kind (and 500 keys), instead of one query each when the fold
        asks: what a long catch-up or a rebuild does before each page."""
        states, cache, absent = self._states, self._cache, self._absent
        wanted: dict[str, set[str]] = {}
        for k in keys:
            if k in states or k in absent:
                continue
            if cache is not None:
                state = cache.get(k)
                if state is not None:
                    states[k] = state
                    continue
            wanted.setdefault(k[0], set()).add(k[1])
        for kind, names in wanted.items():
            table = TABLES[kind]
            found = self._views.fetch_in(
                self._c, f"SELECT {table.key}, state FROM {self._views.t(table.name)}",
                table.key, sorted(names),
            )
            for key, data in found:
                states[(kind, str(key))] = decode_row_state(table, data)
                names.discard(str(key))
            absent.update((kind, key) for key in names)

    def seed(self, kind: str, key: str, state: Any) -> None:
        self._states.setdefault((kind, key), state)

    def evolved(self, event: Any, before: Any) -> Any | None:
        found = self.folded.get(id(event))
        if found is not None and found[0] is event and found[1] is before:
            return found[2]
        return None

    def ref(self, target: str, position: int) -> None:
        self._refs.append((target, position))

    def tag(self, target: str, name: str) -> None:
        self._tag_ops.append(("tag", target, name))

    def untag(self, target: str, name: str) -> None:
        self._tag_ops.append(("untag", target, name))

    def untag_all(self, target: str) -> None:
        self._tag_ops.append(("untag_all", target, None))

    def drop_tag(self, name: str) -> None:
        self._tag_ops.append(("drop_tag", name, None))

    # -- writing -------------------------------------------------------------------

    def write(self) -> None:
        views, c = self._views, self._c
        by_kind: dict[str, list[tuple[str, Any]]] = {}
        for (kind, key), state in self._dirty.items():
            by_kind.setdefault(kind, []).append((key, state))
        for kind, items in by_kind.items():
            table = TABLES[kind]
            changed = (self.reached,) if table.tracks_changes else ()
            rows = [
                (key, *table.values(state), encode_row_state(table, state), *changed)
                for key, state in sorted(items, key=lambda i: i[0])
            ]
            views.upsert(c, table, rows)
        if self._cache is not None:
            cache = self._cache
            for k, state in self._dirty.items():
                cache[k] = state
                cache.move_to_end(k)
            while len(cache) > views.cache_size:
                cache.popitem(last=False)
        self._dirty.clear()
        if self._tag_ops:
            views.set_meta(c, "tags_changed", self.reached or 0)
        views.apply_tags(c, self._tag_ops)
        self._tag_ops = []
        if self._refs:
            # in key order: a b-tree filled in order touches each page once
            self._refs.sort()
            views.insert_refs(c, self._refs)
            self._refs = []
        if self._alerting is not None:
            self._alerting.write(views, c, self._cache)
            self._alerting = None

    # -- alerts and usage (R35, R36; the fold of :mod:`.alerts`) -------------------------

    @property
    def policy(self) -> Policy:
        return self._views.policy

    def _alert_buffer(self) -> _AlertBuffer:
        buffer = self._alerting
        if buffer is None:
            buffer = self._alerting = _AlertBuffer(self._views, self._c)
        return buffer

    def alert_clock(self) -> tuple[int | None, datetime | None, int]:
        return self._alert_buffer().clock

    def set_alert_clock(self, day: int | None, pending_at: datetime | None, position: int) -> None:
        self._alert_buffer().clock = (day, pending_at, position)

    def alert_mark(self, public_id: str) -> tuple[frozenset[str], int | None] | None:
        buffer = self._alert_buffer()
        if public_id in buffer.marks:
            return buffer.marks[public_id]
        k = ("~alert_mark", public_id)
        if self._cache is not None and k in self._cache:
            mark: tuple[frozenset[str], int | None] | None = self._cache[k]
        else:
            mark = self._views.fetch_alert_mark(self._c, public_id)
        buffer.marks[public_id] = mark
        return mark

    def license_facts(self, public_ids: Sequence[str]) -> dict[str, alert_fold.Facts]:
        """What the alerts of these licenses depend on: from the states the batch
        holds, else from the rows' columns in one query (no state decoded)."""
        out: dict[str, alert_fold.Facts] = {}
        wanted = []
        cache = self._cache
        for pid in public_ids:
            k = ("license", pid)
            state = self._states.get(k)
            if state is None and cache is not None:
                state = cache.get(k)
            if state is not None:
                out[pid] = alert_fold.facts_of(state)
            else:
                wanted.append(pid)
        if wanted:
            found = self._views.fetch_license_facts(self._c, wanted)
            for pid in wanted:
                out[pid] = found.get(pid, alert_fold.GONE)
        return out

    def load_alert_marks(self, public_ids: Sequence[str]) -> None:
        """Read the marks of many licenses at once (a sync's save touches thousands)."""
        buffer = self._alert_buffer()
        cache = self._cache
        wanted = []
        for pid in public_ids:
            if pid in buffer.marks:
                continue
            k = ("~alert_mark", pid)
            if cache is not None and k in cache:
                buffer.marks[pid] = cache[k]
            else:
                wanted.append(pid)
        if len(wanted) < 20:
            return  # one by one, when asked
        found = self._views.fetch_alert_marks(self._c, wanted)
        for pid in wanted:
            buffer.marks[pid] = found.get(pid)

    def put_alert_mark(self, public_id: str, reasons: frozenset[str], next_due: int | None) -> None:
        buffer = self._alert_buffer()
        buffer.marks[public_id] = (reasons, next_due)
        buffer.dirty_marks.add(public_id)

    def due_marks(self, upto: int) -> list[tuple[int, str]]:
        buffer = self._alert_buffer()
        found = {
            pid: due for pid, due in self._views.fetch_due_marks(self._c, upto)
            if pid not in buffer.marks
        }
        for pid, mark in buffer.marks.items():
            if mark is not None and mark[1] is not None and mark[1] <= upto:
                found[pid] = mark[1]
        return sorted((due, pid) for pid, due in found.items())

    def pending_licenses(self) -> list[str]:
        buffer = self._alert_buffer()
        stored = [] if buffer.pending_cleared else self._views.fetch_pending(self._c)
        return sorted(set(stored) | buffer.pending)

    def add_pending(self, public_id: str) -> None:
        self._alert_buffer().pending.add(public_id)

    def clear_pending(self) -> None:
        buffer = self._alert_buffer()
        buffer.pending.clear()
        buffer.pending_cleared = True

    def raise_alert(self, row: tuple[Any, ...]) -> None:
        self._alert_buffer().alerts.append(row)

    def record_usage(self, public_id: str, day: int, used: int) -> None:
        self._alert_buffer().usage[(public_id, day)] = used


class _AlertBuffer:
    """What a batch's alert fold changed, written with the batch (R35, R36)."""

    def __init__(self, views: ViewStore, c: Any) -> None:
        self.clock: tuple[int | None, datetime | None, int] = views.fetch_alert_clock(c)
        self.initial_clock = self.clock
        #: marks read or written in the batch (None: the license has none)
        self.marks: dict[str, tuple[frozenset[str], int | None] | None] = {}
        self.dirty_marks: set[str] = set()
        self.pending: set[str] = set()
        self.pending_cleared = False
        self.alerts: list[tuple[Any, ...]] = []
        self.usage: dict[tuple[str, int], int] = {}

    def write(self, views: ViewStore, c: Any, cache: OrderedDict[Any, Any] | None) -> None:
        views.write_alerts(c, self, cache)


class ViewStore:
    """The view tables of one store (see the module's docstring)."""

    #: decoded entity states a single writer keeps across its batches
    cache_size = 20_000

    def __init__(self, dialect: Dialect, prefix: str = "esmc_") -> None:
        self.dialect = dialect
        self.prefix = prefix
        self._lock = threading.RLock()
        self._statements: dict[str, str] = {}

    # -- backend hooks -----------------------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:  # pragma: no cover
        raise NotImplementedError
        yield

    def close(self) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- SQL helpers -----------------------------------------------------------------

    def t(self, name: str) -> str:
        """A table's qualified name."""
        return f"{self.prefix}{name}"

    def sql(self, statement: str) -> str:
        """``{}`` placeholders in the dialect's style (cached per statement)."""
        out = self._statements.get(statement)
        if out is None:
            out = statement.replace("{}", self.dialect.placeholder)
            self._statements[statement] = out
        return out

    def fetch_one(self, c: Any, statement: str, params: Sequence[Any]) -> Any:
        c.execute(self.sql(statement), params)
        return c.fetchone()

    def fetch_all(self, c: Any, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        c.execute(self.sql(statement), params)
        return list(c.fetchall())

    # -- schema ------------------------------------------------------------------------

    def create_statements(self) -> list[str]:
        t = self.t
        out = [
            f"CREATE TABLE IF NOT EXISTS {t('meta')} (name TEXT PRIMARY KEY, value BIGINT)",
            f"CREATE TABLE IF NOT EXISTS {t('tracking')} "
            "(application_name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {t('tags')} (target TEXT NOT NULL, tag TEXT NOT NULL, "
            "tag_cf TEXT NOT NULL, PRIMARY KEY (target, tag))",
            f"CREATE INDEX IF NOT EXISTS {self.prefix}tags_by_tag ON {t('tags')} (tag_cf)",
            # the audit index is its primary key alone: on SQLite, no rowid
            # table beside it (half the writes of a rebuild's references)
            f"CREATE TABLE IF NOT EXISTS {t('audit')} (target TEXT NOT NULL, "
            "position BIGINT NOT NULL, PRIMARY KEY (target, position))"
            + (" WITHOUT ROWID" if self.dialect is SQLITE else ""),
            f"CREATE TABLE IF NOT EXISTS {t('snapshots')} (aggregate_id TEXT PRIMARY KEY, "
            "version BIGINT NOT NULL, state TEXT NOT NULL)",
        ]
        for table in TABLES.values():
            cols = "".join(f", {name} {kind}" for name, kind in table.columns)
            changed = ", changed BIGINT NOT NULL DEFAULT 0" if table.tracks_changes else ""
            out.append(
                f"CREATE TABLE IF NOT EXISTS {t(table.name)} "
                f"({table.key} TEXT PRIMARY KEY{cols}, state TEXT NOT NULL{changed})"
            )
            out += [
                f"CREATE INDEX IF NOT EXISTS {self.prefix}{table.name}_by_{column} "
                f"ON {t(table.name)} ({column})"
                for column in (*table.indexes, *(("changed",) if table.tracks_changes else ()))
            ]
        return out + self.alert_statements()

    def view_tables(self) -> list[str]:
        """Every table the fold writes rows to (the snapshots are not views: they stay)."""
        return [self.t(n) for n in ("tags", "audit")] + [
            self.t(table.name) for table in TABLES.values()
        ] + [self.t(n) for n in self.ALERT_TABLES]

    def _reset_tracking(self, c: Any, name: str = APPLICATION_NAME) -> None:
        """The tracking row exists from the start (writers lock it), at 0 when empty."""
        c.execute(
            self.sql(
                f"INSERT INTO {self.t('tracking')} (application_name, position) VALUES ({{}}, 0) "
                "ON CONFLICT (application_name) DO UPDATE SET position = 0"
            ),
            (name,),
        )

    def create_tables(self) -> None:
        with self._transaction(write=True) as c:
            statements = self.create_statements()
            c.execute(statements[0])  # the meta table: it records the layout of the others
            layout = self.meta(c, "schema")
            if layout is not None and layout != SCHEMA_VERSION:
                # tables of another layout may have other columns: dropped, not emptied
                log.warning("view tables of layout %s dropped; rebuilding from the log", layout)
                for name in [*self.view_tables(), self.t("tracking"), self.t("snapshots")]:
                    c.execute(f"DROP TABLE IF EXISTS {name}")
            for statement in statements[1:]:
                c.execute(statement)
            if layout == SCHEMA_VERSION:
                return
            self._reset_tracking(c)
            self.set_meta(c, "schema", SCHEMA_VERSION)

    def drop(self, *, snapshots: bool = False) -> None:
        """Empty every view (position 0): what a rebuild starts from; with
        ``snapshots`` the aggregate snapshots too."""
        with self._lock, self._transaction(write=True) as c:
            self.position_in(c, lock=True)
            for name in self.view_tables() + ([self.t("snapshots")] if snapshots else []):
                c.execute(f"DELETE FROM {name}")
            c.execute(f"DELETE FROM {self.t('forecast_cache')}")  # made from the views
            self._reset_tracking(c)

    # -- writing -----------------------------------------------------------------------

    @contextmanager
    def batch(
        self, cache: OrderedDict[Any, Any] | None = None, name: str = APPLICATION_NAME
    ) -> Iterator[ViewBatch]:
        """A write transaction over the views.

        ``batch.position`` is where the views stand; the caller folds events
        after it and sets ``batch.reached`` to the last position it applied.
        Rows, references and the tracking record then commit together; with
        ``reached`` left None nothing is written.
        """
        with self._lock, self._transaction(write=True) as c:
            b = ViewBatch(self, c, cache)
            b.position = self.position_in(c, name, lock=True)
            yield b
            self.commit_batch(c, b, name)

    def commit_batch(self, c: Any, b: ViewBatch, name: str = APPLICATION_NAME) -> None:
        """Write what a batch folded, with its tracking position (in ``c``'s transaction)."""
        if b.reached is None or b.reached <= b.position:
            return
        b.write()
        c.execute(
            self.sql(
                f"UPDATE {self.t('tracking')} SET position = {{}} WHERE application_name = {{}}"
            ),
            (b.reached, name),
        )

    def position_in(self, c: Any, name: str = APPLICATION_NAME, *, lock: bool = False) -> int:
        statement = f"SELECT position FROM {self.t('tracking')} WHERE application_name = {{}}"
        if lock and self.dialect is POSTGRES:
            statement += " FOR UPDATE"
        row = self.fetch_one(c, statement, (name,))
        return 0 if row is None else int(row[0])

    def position(self, name: str = APPLICATION_NAME) -> int:
        with self._lock, self._transaction(write=False) as c:
            return self.position_in(c, name)

    def meta(self, c: Any, name: str) -> int | None:
        """A value of the meta table (the layout, when tags or alerts last changed)."""
        row = self.fetch_one(c, f"SELECT value FROM {self.t('meta')} WHERE name = {{}}", (name,))
        return None if row is None else int(row[0])

    def set_meta(self, c: Any, name: str, value: int) -> None:
        c.execute(
            self.sql(
                f"INSERT INTO {self.t('meta')} (name, value) VALUES ({{}}, {{}}) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            ),
            (name, value),
        )

    def upsert(self, c: Any, table: Table, rows: list[tuple[Any, ...]]) -> None:
        names = [table.key, *(n for n, _ in table.columns), "state"]
        if table.tracks_changes:
            names.append("changed")
        marks = ", ".join(["{}"] * len(names))
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        statement = self.sql(
            f"INSERT INTO {self.t(table.name)} ({', '.join(names)}) VALUES ({marks}) "
            f"ON CONFLICT ({table.key}) DO UPDATE SET {updates}"
        )
        c.executemany(statement, rows)

    def insert_refs(self, c: Any, refs: list[tuple[str, int]]) -> None:
        c.executemany(
            self.sql(
                f"INSERT INTO {self.t('audit')} (target, position) VALUES ({{}}, {{}}) "
                "ON CONFLICT DO NOTHING"
            ),
            refs,
        )

    def apply_tags(self, c: Any, ops: list[tuple[str, str, str | None]]) -> None:
        """Apply tag operations in order, each run of operations of one kind as one
        ``executemany`` (deleting a tag on 5,000 objects made 5,000 round trips
        to PostgreSQL)."""
        tags = self.t("tags")
        # SQLite, without statistics, took the index on the tag for an untagging
        # and read every row of the tag for each (deleting a tag on 10,000
        # objects took 9 s); the unary plus leaves it the key on the target
        untag_cf = "+tag_cf" if self.dialect is SQLITE else "tag_cf"
        statements = {
            "tag": f"INSERT INTO {tags} (target, tag, tag_cf) VALUES ({{}}, {{}}, {{}}) "
                   "ON CONFLICT DO NOTHING",
            "untag": f"DELETE FROM {tags} WHERE target = {{}} AND {untag_cf} = {{}}",
            "untag_all": f"DELETE FROM {tags} WHERE target = {{}}",
            "drop_tag": f"DELETE FROM {tags} WHERE tag_cf = {{}}",
        }
        for op, run in itertools.groupby(ops, key=lambda o: o[0]):
            params: list[tuple[str | None, ...]]
            if op == "tag":
                params = [(a, b, (b or "").casefold()) for _, a, b in run]
            elif op == "untag":
                params = [(a, (b or "").casefold()) for _, a, b in run]
            elif op == "untag_all":
                params = [(a,) for _, a, _ in run]
            else:
                params = [(a.casefold(),) for _, a, _ in run]
            c.executemany(self.sql(statements[op]), params)

    # -- snapshots (the command side's) --------------------------------------------------

    def snapshots(self, aggregate_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[int, str]]:
        """The snapshots of several aggregates (those that have one)."""
        by_hex = {a.hex: a for a in aggregate_ids}
        keys = sorted(by_hex)
        out: dict[uuid.UUID, tuple[int, str]] = {}
        with self.reading() as c:
            for key, version, state in self.fetch_in(
                c, f"SELECT aggregate_id, version, state FROM {self.t('snapshots')}",
                "aggregate_id", keys,
            ):
                out[by_hex[key]] = (int(version), str(state))
        return out

    def put_snapshot(self, aggregate_id: uuid.UUID, version: int, state: str) -> None:
        with self._lock, self._transaction(write=True) as c:
            c.execute(
                self.sql(
                    f"INSERT INTO {self.t('snapshots')} (aggregate_id, version, state) "
                    "VALUES ({}, {}, {}) ON CONFLICT (aggregate_id) DO UPDATE SET "
                    f"version = excluded.version, state = excluded.state "
                    f"WHERE excluded.version > {self.t('snapshots')}.version"
                ),
                (aggregate_id.hex, version, state),
            )

    # -- reading -------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[Any]:
        with self._lock, self._transaction(write=False) as c:
            yield c

    def state(self, kind: str, key: str) -> Any | None:
        """One entity's state as the views hold it (None if never seen)."""
        table = TABLES[kind]
        with self.reading() as c:
            row = self.fetch_one(
                c, f"SELECT state FROM {self.t(table.name)} WHERE {table.key} = {{}}", (key,)
            )
        return None if row is None else decode_row_state(table, row[0])

    def states(self, kind: str, where: str = "", params: Sequence[Any] = ()) -> list[Any]:
        table = TABLES[kind]
        with self.reading() as c:
            rows = self.fetch_all(
                c,
                f"SELECT state FROM {self.t(table.name)} {where} ORDER BY {table.key}",
                params,
            )
        return [decode_row_state(table, r[0]) for r in rows]

    def _keys(self, kind: str, where: str = "", params: Sequence[Any] = ()) -> list[str]:
        table = TABLES[kind]
        with self.reading() as c:
            rows = self.fetch_all(
                c, f"SELECT {table.key} FROM {self.t(table.name)} {where} ORDER BY {table.key}",
                params,
            )
        return [str(r[0]) for r in rows]

    def keys_starting(self, kind: str, prefix: str) -> list[str]:
        """The keys of ``kind``'s rows that start with ``prefix``, in order (ids
        are lower-case text: an exact comparison of their first characters)."""
        table = TABLES[kind]
        statement = (
            f"SELECT {table.key} FROM {self.t(table.name)} "
            f"WHERE substr({table.key}, 1, {len(prefix)}) = {{}} "
            f"ORDER BY {table.key}"
        )
        with self.reading() as c:
            return [str(r[0]) for r in self.fetch_all(c, statement, [prefix])]

    def computers_in(self, groups: Iterable[GroupId]) -> list[str]:
        """The ids of the live computers in these groups."""
        wanted = sorted(str(g) for g in groups)
        if not wanted:
            return []
        marks = ", ".join(["{}"] * len(wanted))
        return self._keys("computer", f"WHERE live = 1 AND group_id IN ({marks})", wanted)

    def connected_accounts(self) -> list[str]:
        """The ids of the accounts connected now (R17)."""
        return self._keys("account", "WHERE connected = 1")

    def licenses_from(self, source: Source) -> list[str]:
        """The Public IDs of the live licenses added from ``source``."""
        return self._keys("license", "WHERE live = 1 AND source = {}", [source.value])

    def in_groups(
        self, column: str, groups: frozenset[GroupId] | None, alias: str
    ) -> tuple[str, list[Any]]:
        """A condition keeping rows whose ``column`` is one of ``groups`` (None: any)."""
        if groups is None:
            return "", []
        if not groups:
            return " AND 1 = 0", []
        marks = ", ".join(["{}"] * len(groups))
        return f" AND {alias}.{column} IN ({marks})", sorted(str(g) for g in groups)

    def fetch_in(
        self, c: Any, select: str, column: str, values: Sequence[Any]
    ) -> list[Any]:
        """Rows of ``select`` (a statement without WHERE) whose ``column`` is one
        of ``values``, 500 to a query."""
        out: list[Any] = []
        for i in range(0, len(values), 500):
            chunk = list(values[i : i + 500])
            marks = ", ".join(["{}"] * len(chunk))
            out += self.fetch_all(c, f"{select} WHERE {column} IN ({marks})", chunk)
        return out

    def tags_of(self, c: Any, targets: Iterable[str]) -> dict[str, frozenset[str]]:
        """The tags carried by each of ``targets`` (those carrying none are left out)."""
        wanted = set(targets)
        out: dict[str, set[str]] = {}
        if len(wanted) > 20_000:
            # most of a big store: one range scan per kind of target beats IN-lists
            prefixes = sorted({t.split(":", 1)[0] for t in wanted})
            for prefix in prefixes:
                for target, tag in self.fetch_all(
                    c,
                    f"SELECT target, tag FROM {self.t('tags')} WHERE target >= {{}} "
                    "AND target < {}",
                    (prefix + ":", prefix + ";"),
                ):
                    if target in wanted:
                        out.setdefault(target, set()).add(tag)
        else:
            for target, tag in self.fetch_in(
                c, f"SELECT target, tag FROM {self.t('tags')}", "target", sorted(wanted)
            ):
                out.setdefault(target, set()).add(tag)
        return {k: frozenset(v) for k, v in out.items()}

    def license_rows(
        self,
        groups: frozenset[GroupId] | None,
        license_filter: LicenseFilter | None,
        today: date,
        policy: Policy,
        public_id: str | None = None,
        *,
        among: Sequence[str] | None = None,
    ) -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, frozenset[str]]]:
        """(public id, group, view fields) of the live licenses in ``groups`` matching
        the filter, by Public ID, and the tags of them and their pools; with
        ``among``, only those of these Public IDs."""
        where, params = self.in_groups("group_id", groups, "p")
        if public_id is not None:
            where += " AND l.public_id = {}"
            params.append(public_id)
        if among is not None:
            if not among:
                return [], {}
            where += f" AND l.public_id IN ({', '.join(['{}'] * len(among))})"
            params += list(among)
        exact = _exact_in_sql(policy)
        if license_filter is not None:
            more, more_params = self._filter_sql(license_filter, today, policy, status=exact)
            where += more
            params += more_params
        # CROSS JOIN fixes SQLite's join order. A list: the visible groups' pools
        # by index first, then their licenses by pool. Named licenses (one, or
        # the few a kept answer brings up to date): those first, by key, then
        # each one's pool -- not every pool probed for them
        named = public_id is not None or among is not None
        first, second = ("licenses", "pools") if named else ("pools", "licenses")
        statement = (
            f"SELECT l.public_id, p.group_id, l.view FROM {self.t(first)} {first[0]} "
            f"CROSS JOIN {self.t(second)} {second[0]} "
            f"WHERE l.pool_id = p.pool_id AND l.live = 1 AND p.live = 1{where} "
            "ORDER BY l.public_id"
        )
        with self.reading() as c:
            rows = self.fetch_all(c, statement, params)
            out = [(str(pid), str(group), orjson.loads(view)) for pid, group, view in rows]
            if license_filter is not None and not exact and (
                license_filter.levels or license_filter.reasons
            ):
                out = [r for r in out if _status_matches(license_filter, r[2], today, policy)]
            targets = [f"license:{pid}" for pid, _, _ in out]
            targets += [f"pool:{v['pool_id']}" for _, _, v in out]
            tags = self.tags_of(c, targets) if out else {}
        return out, tags

    def changed_since(self, position: int) -> tuple[int, set[str], set[str], bool] | None:
        """What changed in the license list's inputs after ``position``: (the
        views' position, Public IDs of changed license rows, changed pools,
        whether any tag changed); None when the views stand before ``position``
        (they were emptied since)."""
        with self.reading() as c:
            now = self.position_in(c)
            if now < position:
                return None
            tags = self.meta(c, "tags_changed")
            licenses = self.fetch_all(
                c, f"SELECT public_id FROM {self.t('licenses')} WHERE changed > {{}}", (position,)
            )
            pools = self.fetch_all(
                c, f"SELECT pool_id FROM {self.t('pools')} WHERE changed > {{}}", (position,)
            )
        return (
            now,
            {str(r[0]) for r in licenses},
            {str(r[0]) for r in pools},
            tags is not None and tags > position,
        )

    def licenses_in_pools(self, pool_ids: Sequence[str]) -> set[str]:
        """Public IDs of the license rows (live or not) naming one of these pools."""
        with self.reading() as c:
            rows = self.fetch_in(
                c, f"SELECT public_id FROM {self.t('licenses')}", "pool_id", sorted(pool_ids)
            )
        return {str(r[0]) for r in rows}

    def _filter_sql(
        self, f: LicenseFilter, today: date, policy: Policy, *, status: bool = True
    ) -> tuple[str, list[Any]]:
        """The filter as SQL over the license columns (R8a); with ``status`` False
        its levels and reasons are left out (the caller checks them)."""
        parts: list[str] = []
        params: list[Any] = []
        if status and (f.levels or f.reasons):
            status_parts, status_params = _status_sql(f, today, policy)
            parts += status_parts
            params += status_params
        if f.types:
            marks = ", ".join(["{}"] * len(f.types))
            parts.append(f"l.license_type IN ({marks})")
            params += [x.value for x in f.types]
        if f.products:
            marks = ", ".join(["{}"] * len(f.products))
            parts.append(f"l.product_cf IN ({marks})")
            params += [p.casefold() for p in f.products]
        if f.text is not None:
            needle = f.text.casefold()
            contains = self.dialect.contains
            parts.append(
                "(" + " OR ".join(
                    contains(f"l.{col}", "{}") for col in ("public_id_cf", "product_cf", "owner_cf")
                ) + ")"
            )
            params += [needle] * 3
        if f.tags:
            marks = ", ".join(["{}"] * len(f.tags))
            tags = self.t("tags")
            # the tag's targets found once (its index), each license then looked up
            # among them: a correlated EXISTS had SQLite read every target of the
            # tag for each license (1.8 s over 5,000 licenses and a 560-target tag)
            parts.append(
                f"('license:' || l.public_id IN (SELECT t.target FROM {tags} t "
                f"WHERE t.tag_cf IN ({marks})) OR 'pool:' || l.pool_id IN "
                f"(SELECT t.target FROM {tags} t WHERE t.tag_cf IN ({marks})))"
            )
            folded = [x.casefold() for x in f.tags]
            params += folded + folded
        return "".join(f" AND {p}" for p in parts), params

    def _live_states(
        self, c: Any, kind: str, groups: frozenset[GroupId] | None, key: str | None
    ) -> list[Any]:
        """Live pools or computers in ``groups`` (one, with ``key``), by name."""
        table = TABLES[kind]
        where, params = self.in_groups("group_id", groups, "e")
        if key is not None:
            where += f" AND e.{table.key} = {{}}"
            params.append(key)
        statement = (
            f"SELECT e.state FROM {self.t(table.name)} e WHERE e.live = 1{where} "
            f"ORDER BY e.name_cf, e.{table.key}"
        )
        return [decode_row_state(table, r[0]) for r in self.fetch_all(c, statement, params)]

    def pool_rows(
        self, groups: frozenset[GroupId] | None, pool_id: str | None = None
    ) -> tuple[list[pool.PoolState], dict[str, frozenset[str]]]:
        with self.reading() as c:
            states = self._live_states(c, "pool", groups, pool_id)
            tags = self.tags_of(c, [f"pool:{s.pool_id}" for s in states]) if states else {}
        return states, tags

    def computer_rows(
        self, groups: frozenset[GroupId] | None, computer_id: str | None = None
    ) -> tuple[list[computer.ComputerState], dict[str, frozenset[str]], dict[str, Any]]:
        """Live computers in ``groups`` by name, their tags, and the
        (expires, subscription) of the licenses their products name (R9)."""
        with self.reading() as c:
            states = self._live_states(c, "computer", groups, computer_id)
            tags = (
                self.tags_of(c, [f"computer:{s.computer_id}" for s in states]) if states else {}
            )
            pids = sorted(
                {str(p.public_id) for s in states for p in s.products.values() if p.public_id}
            )
            validity: dict[str, Any] = {}
            for pid, view, live in self.fetch_in(
                c, f"SELECT public_id, view, live FROM {self.t('licenses')}", "public_id", pids
            ):
                if live:
                    validity[str(pid)] = orjson.loads(view)
        return states, tags, validity

    def history_positions(self, target: str, limit: int | None = None) -> list[int]:
        """The log positions of ``target``'s history, in order (the first
        ``limit``: a pool's creation is its first, whatever else it has)."""
        more = "" if limit is None else f" LIMIT {int(limit)}"
        with self.reading() as c:
            rows = self.fetch_all(
                c,
                f"SELECT position FROM {self.t('audit')} WHERE target = {{}} "
                f"ORDER BY position{more}",
                (target,),
            )
        return [int(r[0]) for r in rows]

    def group_of(self, kind: str, key: str) -> tuple[bool, str | None]:
        """Whether a pool, computer or license has a row, and the group it is in
        (a license: its pool's), from the columns: who may see it (R14) without
        decoding its state (a pool's holds every license of it)."""
        with self.reading() as c:
            if kind == "license":
                row = self.fetch_one(
                    c,
                    f"SELECT p.group_id FROM {self.t('licenses')} l JOIN {self.t('pools')} p "
                    "ON p.pool_id = l.pool_id WHERE l.public_id = {}",
                    (key,),
                )
            else:
                table = TABLES[kind]
                row = self.fetch_one(
                    c, f"SELECT group_id FROM {self.t(table.name)} WHERE {table.key} = {{}}",
                    (key,),
                )
        return (False, None) if row is None else (True, None if row[0] is None else str(row[0]))

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every view row, in key order (tests compare live, rebuilt and replayed views)."""
        out = {}
        with self.reading() as c:
            for name in self.view_tables():
                rows = self.fetch_all(c, f"SELECT * FROM {name}")
                out[name[len(self.prefix) :]] = sorted(tuple(r) for r in rows)
        return out

    # -- alerts and usage (R35, R36) -------------------------------------------------------

    #: the thresholds alerts are raised by (the application sets its own)
    policy: Policy = Policy()

    #: the tables of the alert fold (views: emptied by a rebuild)
    ALERT_TABLES = ("alert_clock", "alert_marks", "alert_pending", "alerts", "usage_days")

    def alert_statements(self) -> list[str]:
        t, p = self.t, self.prefix
        no_rowid = " WITHOUT ROWID" if self.dialect is SQLITE else ""
        return [
            f"CREATE TABLE IF NOT EXISTS {t('alert_clock')} (name TEXT PRIMARY KEY, day BIGINT, "
            "pending_at TEXT, position BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {t('alert_marks')} (public_id TEXT PRIMARY KEY, "
            "reasons TEXT NOT NULL, next_due BIGINT)",
            f"CREATE INDEX IF NOT EXISTS {p}alert_marks_by_due ON {t('alert_marks')} (next_due)",
            f"CREATE TABLE IF NOT EXISTS {t('alert_pending')} (public_id TEXT PRIMARY KEY)",
            f"CREATE TABLE IF NOT EXISTS {t('alerts')} (alert_id TEXT PRIMARY KEY, "
            "public_id TEXT NOT NULL, reason TEXT NOT NULL, entered INTEGER NOT NULL, "
            "at TEXT NOT NULL, position BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {p}alerts_by_at ON {t('alerts')} (at)",
            f"CREATE INDEX IF NOT EXISTS {p}alerts_by_license ON {t('alerts')} (public_id)",
            f"CREATE TABLE IF NOT EXISTS {t('usage_days')} (public_id TEXT NOT NULL, "
            "day BIGINT NOT NULL, used_units BIGINT NOT NULL, PRIMARY KEY (public_id, day))"
            + no_rowid,
            # not a view either: where each sink's round may start (every alert
            # before it is settled); raising an alert lowers it, so a rebuild
            # (which raises them all again) makes the next round read them all
            f"CREATE TABLE IF NOT EXISTS {t('alert_sink_marks')} (sink TEXT PRIMARY KEY, "
            "at TEXT NOT NULL, position BIGINT NOT NULL, public_id TEXT NOT NULL, "
            "reason TEXT NOT NULL, entered INTEGER NOT NULL)",
            # not a view: what was sent where is no fact of the log, and stays
            # through a rebuild (which raises the same alerts, with the same ids)
            f"CREATE TABLE IF NOT EXISTS {t('alert_deliveries')} (alert_id TEXT NOT NULL, "
            "sink TEXT NOT NULL, outcome TEXT NOT NULL, attempts INTEGER NOT NULL, "
            "at TEXT NOT NULL, detail TEXT, PRIMARY KEY (alert_id, sink))",
            # not a view either: forecasts made today, each with what it was made
            # from (a cache shared by processes; emptied with the views)
            f"CREATE TABLE IF NOT EXISTS {t('forecast_cache')} (public_id TEXT PRIMARY KEY, "
            "made_from TEXT NOT NULL, forecast TEXT NOT NULL)",
        ]

    def fetch_alert_clock(self, c: Any) -> tuple[int | None, datetime | None, int]:
        row = self.fetch_one(
            c, f"SELECT day, pending_at, position FROM {self.t('alert_clock')} WHERE name = {{}}",
            ("alerts",),
        )
        if row is None:
            return None, None, 0
        day, pending_at, position = row
        return (
            None if day is None else int(day),
            None if pending_at is None else parse_stamp(str(pending_at)),
            int(position),
        )

    def fetch_alert_mark(self, c: Any, public_id: str) -> tuple[frozenset[str], int | None] | None:
        row = self.fetch_one(
            c, f"SELECT reasons, next_due FROM {self.t('alert_marks')} WHERE public_id = {{}}",
            (public_id,),
        )
        if row is None:
            return None
        reasons = frozenset(r for r in str(row[0]).split(",") if r)
        return reasons, None if row[1] is None else int(row[1])

    def fetch_alert_marks(
        self, c: Any, public_ids: Sequence[str]
    ) -> dict[str, tuple[frozenset[str], int | None]]:
        out: dict[str, tuple[frozenset[str], int | None]] = {}
        for pid, reasons, due in self.fetch_in(
            c, f"SELECT public_id, reasons, next_due FROM {self.t('alert_marks')}",
            "public_id", sorted(public_ids),
        ):
            out[str(pid)] = (
                frozenset(r for r in str(reasons).split(",") if r),
                None if due is None else int(due),
            )
        return out

    def fetch_license_facts(
        self, c: Any, public_ids: Sequence[str]
    ) -> dict[str, alert_fold.Facts]:
        out = {}
        for pid, live, units, used, expires, suspended, registered, obsolete in self.fetch_in(
            c,
            "SELECT public_id, live, units, used_units, expires, suspended, registered, "
            f"obsolete FROM {self.t('licenses')}",
            "public_id", sorted(public_ids),
        ):
            out[str(pid)] = alert_fold.Facts(
                bool(live), int(units), int(used), _date(expires) if expires else None,
                bool(suspended), bool(registered), bool(obsolete),
            ) if live else alert_fold.GONE
        return out

    def fetch_due_marks(self, c: Any, upto: int) -> list[tuple[str, int]]:
        rows = self.fetch_all(
            c, f"SELECT public_id, next_due FROM {self.t('alert_marks')} WHERE next_due <= {{}}",
            (upto,),
        )
        return [(str(pid), int(due)) for pid, due in rows]

    def fetch_pending(self, c: Any) -> list[str]:
        rows = self.fetch_all(c, f"SELECT public_id FROM {self.t('alert_pending')}")
        return [str(r[0]) for r in rows]

    def write_alerts(
        self, c: Any, buffer: _AlertBuffer, cache: OrderedDict[Any, Any] | None
    ) -> None:
        t = self.t
        if buffer.clock != buffer.initial_clock:
            day, pending_at, position = buffer.clock
            c.execute(
                self.sql(
                    f"INSERT INTO {t('alert_clock')} (name, day, pending_at, position) "
                    "VALUES ({}, {}, {}, {}) ON CONFLICT (name) DO UPDATE SET day = excluded.day, "
                    "pending_at = excluded.pending_at, position = excluded.position"
                ),
                ("alerts", day, None if pending_at is None else stamp(pending_at), position),
            )
        if buffer.pending_cleared:
            c.execute(f"DELETE FROM {t('alert_pending')}")
        if buffer.pending:
            c.executemany(
                self.sql(
                    f"INSERT INTO {t('alert_pending')} (public_id) VALUES ({{}}) "
                    "ON CONFLICT DO NOTHING"
                ),
                [(p,) for p in sorted(buffer.pending)],
            )
        if buffer.dirty_marks:
            rows = []
            for pid in sorted(buffer.dirty_marks):
                mark = buffer.marks[pid]
                assert mark is not None
                rows.append((pid, ",".join(sorted(mark[0])), mark[1]))
                if cache is not None:
                    cache[("~alert_mark", pid)] = mark
            c.executemany(
                self.sql(
                    f"INSERT INTO {t('alert_marks')} (public_id, reasons, next_due) "
                    "VALUES ({}, {}, {}) ON CONFLICT (public_id) DO UPDATE SET "
                    "reasons = excluded.reasons, next_due = excluded.next_due"
                ),
                rows,
            )
        if buffer.alerts:
            c.executemany(
                self.sql(
                    f"INSERT INTO {t('alerts')} (alert_id, public_id, reason, entered, at, "
                    "position) VALUES ({}, {}, {}, {}, {}, {}) ON CONFLICT DO NOTHING"
                ),
                buffer.alerts,
            )
            # a sink's round starts no later than the earliest alert raised since
            # (clocks apart, or a rebuild, can raise one before where it stood),
            # and a round that began before this cannot move its start past it
            lowest = min(_delivery_key(r) for r in buffer.alerts)
            c.execute(
                self.sql(
                    f"UPDATE {t('alert_sink_marks')} SET at = {{}}, position = {{}}, "
                    "public_id = {}, reason = {}, entered = {} "
                    f"WHERE {_KEY_COLUMNS} > ({{}}, {{}}, {{}}, {{}}, {{}})"
                ),
                (*lowest, *lowest),
            )
            c.execute(
                self.sql(
                    f"INSERT INTO {t('meta')} (name, value) VALUES ({{}}, 1) ON CONFLICT (name) "
                    f"DO UPDATE SET value = {t('meta')}.value + 1"
                ),
                ("alerts_raised",),
            )
        if buffer.usage:
            c.executemany(
                self.sql(
                    f"INSERT INTO {t('usage_days')} (public_id, day, used_units) "
                    "VALUES ({}, {}, {}) ON CONFLICT (public_id, day) DO UPDATE SET "
                    "used_units = excluded.used_units"
                ),
                [(pid, day, used) for (pid, day), used in sorted(buffer.usage.items())],
            )

    def alert_day(self) -> tuple[int | None, bool]:
        """(the day the alerts are evaluated up to, whether a save awaits evaluation)."""
        with self.reading() as c:
            day, pending_at, _ = self.fetch_alert_clock(c)
        return day, pending_at is not None

    def advance_alerts(self, upto: int) -> None:
        """Raise what the calendar changed up to the day ``upto`` (a date ordinal),
        and what the last save changed, in one transaction with the day reached."""
        day, pending = self.alert_day()
        if day is not None and day >= upto and not pending:
            return
        with self._lock, self._transaction(write=True) as c:
            self.position_in(c, lock=True)  # one writer of the views at a time
            b = ViewBatch(self, c, None)
            alert_fold.advance(b, upto)
            if b._alerting is not None:
                b._alerting.write(self, c, None)

    def alert_rows(
        self, groups: frozenset[GroupId] | None, since: str | None
    ) -> list[tuple[Any, ...]]:
        """(alert id, public id, reason, entered, at, position) of the alerts of
        licenses in ``groups`` (where each license's pool is now), oldest first."""
        where, params = self.in_groups("group_id", groups, "p")
        if since is not None:
            where += " AND a.at >= {}"
            params.append(since)
        statement = (
            f"SELECT a.alert_id, a.public_id, a.reason, a.entered, a.at, a.position "
            f"FROM {self.t('alerts')} a JOIN {self.t('licenses')} l ON l.public_id = a.public_id "
            f"JOIN {self.t('pools')} p ON p.pool_id = l.pool_id WHERE 1 = 1{where} "
            "ORDER BY a.at, a.position, a.public_id, a.reason, a.entered"
        )
        with self.reading() as c:
            return [tuple(r) for r in self.fetch_all(c, statement, params)]

    def undelivered(
        self, sink: str, limit: int, after: tuple[Any, ...] | None = None
    ) -> list[tuple[Any, ...]]:
        """The oldest alerts not yet delivered to ``sink`` (rows of ``alert_rows``'s
        form), from the sink's mark on (every alert before it is settled); with
        ``after`` (a row), only those after it in delivery order -- the next page of
        a round, which need not read again the pages it has done."""
        params: list[Any] = []
        key: tuple[Any, ...] | None
        if after is not None:
            key, bound = _delivery_key(after), ">"
        else:
            key, bound = self.sink_mark(sink), ">="
        where = ""
        if key is not None:
            # the index on ``at`` bounds the scan; the rest of the key decides ties
            where = (
                " AND a.at >= {} AND (a.at, a.position, a.public_id, a.reason, a.entered) "
                f"{bound} ({{}}, {{}}, {{}}, {{}}, {{}})"
            )
            params = [key[0], *key]
        statement = (
            f"SELECT a.alert_id, a.public_id, a.reason, a.entered, a.at, a.position "
            f"FROM {self.t('alerts')} a WHERE 1 = 1{where} AND NOT EXISTS (SELECT 1 FROM "
            f"{self.t('alert_deliveries')} d WHERE d.alert_id = a.alert_id AND d.sink = {{}} "
            "AND d.outcome IN ('delivered', 'refused')) "
            f"ORDER BY a.at, a.position, a.public_id, a.reason, a.entered LIMIT {int(limit)}"
        )
        with self.reading() as c:
            return [tuple(r) for r in self.fetch_all(c, statement, [*params, sink])]

    def sink_mark(self, sink: str) -> tuple[Any, ...] | None:
        """Where ``sink``'s next round starts (a delivery key), None: the first alert."""
        with self.reading() as c:
            row = self.fetch_one(
                c, f"SELECT {_KEY_COLUMNS[1:-1]} FROM {self.t('alert_sink_marks')} "
                "WHERE sink = {}", (sink,),
            )
        return None if row is None else tuple(row)

    def alerts_raised(self) -> int:
        """How many batches raised alerts so far (a round's compare-and-set)."""
        with self.reading() as c:
            return self.meta(c, "alerts_raised") or 0

    def move_sink_mark(self, sink: str, row: tuple[Any, ...], raised: int) -> bool:
        """Start ``sink``'s next round at ``row`` (every alert before it settled),
        unless alerts were raised since ``raised`` was read: one of them may lie
        before it, unseen by the round. Returns whether it moved."""
        key = _delivery_key(row)
        with self._lock, self._transaction(write=True) as c:
            if (self.meta(c, "alerts_raised") or 0) != raised:
                return False
            c.execute(
                self.sql(
                    f"INSERT INTO {self.t('alert_sink_marks')} (sink, {_KEY_COLUMNS[1:-1]}) "
                    "VALUES ({}, {}, {}, {}, {}, {}) ON CONFLICT (sink) DO UPDATE SET "
                    "at = excluded.at, position = excluded.position, "
                    "public_id = excluded.public_id, reason = excluded.reason, "
                    "entered = excluded.entered"
                ),
                (sink, *key),
            )
        return True

    def deliveries(self, alert_ids: Sequence[str]) -> dict[str, dict[str, tuple[Any, ...]]]:
        """alert id -> sink -> (outcome, attempts, at, detail)."""
        out: dict[str, dict[str, tuple[Any, ...]]] = {}
        with self.reading() as c:
            for alert, sink, outcome, attempts, at, detail in self.fetch_in(
                c,
                f"SELECT alert_id, sink, outcome, attempts, at, detail "
                f"FROM {self.t('alert_deliveries')}",
                "alert_id", sorted(set(alert_ids)),
            ):
                out.setdefault(str(alert), {})[str(sink)] = (outcome, attempts, at, detail)
        return out

    def record_delivery(
        self, alert: str, sink: str, outcome: str, at: str, detail: str | None
    ) -> None:
        """Record one delivery attempt's outcome (attempts add up; delivered stays)."""
        deliveries = self.t("alert_deliveries")
        with self._lock, self._transaction(write=True) as c:
            c.execute(
                self.sql(
                    f"INSERT INTO {deliveries} (alert_id, sink, outcome, attempts, at, detail) "
                    "VALUES ({}, {}, {}, 1, {}, {}) ON CONFLICT (alert_id, sink) DO UPDATE SET "
                    f"attempts = {deliveries}.attempts + 1, at = excluded.at, "
                    f"outcome = CASE WHEN {deliveries}.outcome = 'delivered' THEN 'delivered' "
                    "ELSE excluded.outcome END, detail = CASE WHEN "
                    f"{deliveries}.outcome = 'delivered' THEN NULL ELSE excluded.detail END"
                ),
                (alert, sink, outcome, at, detail),
            )

    def cached_forecasts(self, public_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """public id -> (what its kept forecast was made from, the forecast as JSON)."""
        with self.reading() as c:
            rows = self.fetch_in(
                c, f"SELECT public_id, made_from, forecast FROM {self.t('forecast_cache')}",
                "public_id", sorted(set(public_ids)),
            )
        return {str(pid): (str(made_from), str(made)) for pid, made_from, made in rows}

    def drop_forecasts(self) -> None:
        """Forget the forecasts kept (they are made again when asked)."""
        with self._lock, self._transaction(write=True) as c:
            c.execute(f"DELETE FROM {self.t('forecast_cache')}")

    def cache_forecasts(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Keep forecasts: (public id, what it was made from, the forecast as JSON)."""
        with self._lock, self._transaction(write=True) as c:
            c.executemany(
                self.sql(
                    f"INSERT INTO {self.t('forecast_cache')} (public_id, made_from, forecast) "
                    "VALUES ({}, {}, {}) ON CONFLICT (public_id) DO UPDATE SET "
                    "made_from = excluded.made_from, forecast = excluded.forecast"
                ),
                sorted(rows),
            )

    def usage_rows(
        self, public_ids: Sequence[str], since: int
    ) -> dict[str, list[tuple[int, int]]]:
        """Each license's daily usage (day, used units), by day, from the last
        day before ``since`` on (R36)."""
        out: dict[str, list[tuple[int, int]]] = {}
        u = self.t("usage_days")
        wanted = sorted(set(public_ids))
        with self.reading() as c:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ", ".join(["{}"] * len(chunk))
                rows = self.fetch_all(
                    c,
                    f"SELECT u.public_id, u.day, u.used_units FROM {u} u "
                    f"WHERE u.public_id IN ({marks}) AND u.day >= COALESCE((SELECT MAX(b.day) "
                    f"FROM {u} b WHERE b.public_id = u.public_id AND b.day < {{}}), {{}})",
                    [*chunk, since, since],
                )
                for pid, day, used in rows:
                    out.setdefault(str(pid), []).append((int(day), int(used)))
        for series in out.values():
            series.sort()
        return out

class SQLiteViews(ViewStore):
    """Views in a SQLite database: the store's own file, another file, or memory.

    Its connection runs with ``synchronous=NORMAL``: a view transaction does
    not wait for the disk. After a power cut the views may have lost their
    last transactions (rows and tracking together, WAL keeps them
    consistent), and catch up from the log like any restart.
    """

    def __init__(self, path: str, *, prefix: str = "esmc_") -> None:
        super().__init__(SQLITE, prefix)
        self.path = path
        memory = path == ":memory:" or "mode=memory" in path
        if not memory:
            create_private_file(path.removeprefix("file:").split("?")[0])  # R32: 0600
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0,
            uri=path.startswith("file:"),
        )
        if not memory:
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self.create_tables()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            c = self._conn.cursor()
            c.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            else:
                c.execute("COMMIT")
            finally:
                c.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteViews({self.path!r})"


class PostgresViews(ViewStore):
    """Views in the store's PostgreSQL database (its schema), beside the events.

    They borrow connections from the event store's own pool (eventsourcing's
    ``PostgresDatastore``): no connection of their own per application.
    """

    def __init__(self, datastore: Any, *, schema: str = "public", prefix: str = "esmc_") -> None:
        import psycopg
        from psycopg import sql
        from psycopg.rows import tuple_row

        quoted = sql.Identifier(schema).as_string(None)
        super().__init__(POSTGRES, f"{quoted}.{prefix}")
        self.schema = schema
        self.datastore = datastore
        self._tuple_row = tuple_row
        for attempt in range(5):  # racing CREATE ... IF NOT EXISTS can clash in the catalog
            try:
                self.create_tables()
                break
            except Exception as e:
                cause = e.__cause__ or e
                racing = isinstance(
                    cause, (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected)
                ) or "already exists" in str(e) or "concurrently" in str(e)
                if not racing or attempt == 4:
                    raise

    def create_statements(self) -> list[str]:
        # index names are not schema-qualified in PostgreSQL
        unqualified = self.prefix.split(".", 1)[-1]
        return [
            s.replace(f"EXISTS {self.prefix}", f"EXISTS {unqualified}", 1)
            if s.startswith("CREATE INDEX") else s
            for s in super().create_statements()
        ]

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:
        with self._lock, self.datastore.transaction(commit=True) as c:
            c.row_factory = self._tuple_row
            yield _NulSafeCursor(c)

    def close(self) -> None:
        """The connections are the event store's: nothing of its own to close."""

    def __repr__(self) -> str:
        return f"PostgresViews(schema={self.schema!r})"


def _status_sql(f: LicenseFilter, today: date, policy: Policy) -> tuple[list[str], list[Any]]:
    """The filter's levels and reasons as conditions on the license columns.

    They mirror ``license_status`` (R8) for ``today`` and the policy, so the
    level filter runs in SQL; ``tests/test_views_sql.py`` checks them against
    ``license_status`` for random facts.
    """
    parts: list[str] = []
    params: list[Any] = []
    t = today.isoformat()
    soon = (today + timedelta(days=policy.expiring_days)).isoformat()
    ratio = policy.at_risk_fraction
    reason_sql: dict[StatusReason, tuple[str, list[Any]]] = {
        StatusReason.SUSPENDED: ("l.suspended = 1", []),
        StatusReason.EXPIRED: ("(l.expires IS NOT NULL AND l.expires < {})", [t]),
        StatusReason.EXPIRING: (
            "(l.expires IS NOT NULL AND l.expires >= {} AND l.expires <= {})", [t, soon]
        ),
        StatusReason.NOT_REGISTERED: ("l.registered = 0", []),
        StatusReason.OBSOLETE: ("l.obsolete = 1", []),
        StatusReason.OVERUSED: ("l.used_units > l.units", []),
        StatusReason.AT_RISK_OF_OVERUSE: (
            "(l.used_units <= l.units AND l.used_units * {} > l.units * {})",
            [ratio.denominator, ratio.numerator],
        ),
    }

    def any_of(reasons: Iterable[StatusReason]) -> tuple[str, list[Any]]:
        sql, ps = [], []
        for r in reasons:
            s, p = reason_sql[r]
            sql.append(s)
            ps += p
        return "(" + " OR ".join(sql) + ")", ps

    if f.reasons:
        s, p = any_of(f.reasons)
        parts.append(s)
        params += p
    if f.levels:
        # a level is the worst reason present: one of its reasons and none worse
        level_sql = []
        worse: list[StatusReason] = []
        for level in sorted(StatusLevel, reverse=True):
            if level is StatusLevel.OK:
                continue
            mine = [r for r in StatusReason if r.level is level]
            if level in f.levels:
                s, p = any_of(mine)
                if worse:
                    w, wp = any_of(worse)
                    s, p = f"({s} AND NOT {w})", p + wp
                level_sql.append(s)
                params += p
            worse += mine
        if StatusLevel.OK in f.levels:
            w, wp = any_of(worse)
            level_sql.append(f"NOT {w}")
            params += wp
        parts.append("(" + " OR ".join(level_sql) + ")")
    return parts, params


#: the at-risk ratio's terms up to which ``used * denominator`` stays exact in
#: SQL's 64-bit integers for any realistic unit count (below 2**43 units)
_EXACT_TERM = 1 << 20


def _exact_in_sql(policy: Policy) -> bool:
    """Whether the status conditions can run in SQL with exact integers.

    A ratio given as a float of many digits (1/3 is 3333333333333333/10**16)
    would overflow them; its levels and reasons are then checked in Python.
    """
    ratio = policy.at_risk_fraction
    return ratio.denominator <= _EXACT_TERM and ratio.numerator <= _EXACT_TERM


#: expiration dates by their text: many licenses share one
_date = functools.lru_cache(maxsize=1 << 14)(date.fromisoformat)


def row_expires(v: Mapping[str, Any]) -> date | None:
    """A license row's expiration date (its ``view`` column, parsed)."""
    return _date(v["expires"]) if v["expires"] else None


def row_status(v: Mapping[str, Any], today: date, policy: Policy) -> Status:
    """A license row's status as of ``today`` (R8): the domain's ``license_status``."""
    return license_status(
        units=v["units"], used_units=v["used_units"], expires=row_expires(v), today=today,
        policy=policy, suspended=v["suspended"], registered=v["registered"],
        registration_url=v["registration_url"], obsolete=v["obsolete"],
    )


def _status_matches(f: LicenseFilter, v: dict[str, Any], today: date, policy: Policy) -> bool:
    status = row_status(v, today, policy)
    if f.levels and status.level not in f.levels:
        return False
    return not (f.reasons and status.reasons.isdisjoint(f.reasons))


def _nul_safe(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


class _NulSafeCursor:
    """PostgreSQL text cannot hold NUL: a stored fact with one keeps it in its JSON
    state (escaped) and shows U+FFFD in the columns queries filter on."""

    def __init__(self, cursor: Any) -> None:
        self._c = cursor

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self._c.execute(statement, [_nul_safe(p) for p in params])

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> Any:
        return self._c.executemany(statement, [[_nul_safe(p) for p in r] for r in rows])

    def fetchone(self) -> Any:
        return self._c.fetchone()

    def fetchall(self) -> Any:
        return self._c.fetchall()


def open_views(env: Mapping[str, str], recorder: Any = None) -> ViewStore:
    """The views of the store ``env`` names: beside its events unless ``ESMC_VIEWS``
    says otherwise (``memory`` or ``sqlite:PATH``). ``recorder``: the store's
    application recorder (PostgreSQL views use its connection pool)."""
    spec = (env.get("ESMC_VIEWS") or "").strip()
    if spec == "memory":
        return SQLiteViews(":memory:")
    if spec.startswith("sqlite:"):
        return SQLiteViews(spec[len("sqlite:") :])
    if spec and spec not in ("postgres", "postgresql"):
        from ..domain.errors import InvalidInput

        raise InvalidInput(f"ESMC_VIEWS is 'memory', 'sqlite:PATH' or 'postgres', not {spec!r}")
    module = env.get("PERSISTENCE_MODULE") or "eventsourcing.popo"
    if spec or module.endswith("postgres"):
        datastore = getattr(recorder, "datastore", None)
        if not module.endswith("postgres") or datastore is None:
            from ..domain.errors import InvalidInput

            raise InvalidInput(
                "views in PostgreSQL live beside a PostgreSQL store: use --views sqlite:PATH "
                "or memory for this store, or leave --views out to keep them beside it"
            )
        return PostgresViews(datastore, schema=env.get("POSTGRES_SCHEMA") or "public")
    if module.endswith("sqlite"):
        name = env.get("SQLITE_DBNAME") or ""
        if not name or name == ":memory:" or "mode=memory" in name:
            return SQLiteViews(":memory:")
        return SQLiteViews(name)
    return SQLiteViews(":memory:")


__all__ = [
    "APPLICATION_NAME",
    "SCHEMA_VERSION",
    "TABLES",
    "PostgresViews",
    "SQLiteViews",
    "Table",
    "ViewBatch",
    "ViewStore",
    "open_views",
]
