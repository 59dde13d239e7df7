"""Persistent views: the read model's entities as rows, written with their tracking record.

The in-memory :class:`~esmc_licensing.projections.memory.ReadModel` stays the
single source of truth for what an event means (it folds with the domain's own
``evolve`` functions). A view store persists what a batch of events changed in
it -- one row per entity (kind, key) holding the entity's state as JSON plus a
few indexed columns (a license's pool, a pool's group), and one audit row per
event indexed by target -- together with the tracking record of the batch's
last notification id, in ONE transaction. A crash therefore never applies an
event twice or skips one: rows and position commit or roll back together.

Every store is an eventsourcing ``TrackingRecorder`` (``insert_tracking``,
``max_tracking_id``, ``has_tracking_id``, ``wait``) and passes eventsourcing's
``TrackingRecorderTestCase``. Backends: :class:`MemoryViewStore` here,
``SQLiteViewStore`` (``sqlite_views``) and ``PostgresViewStore``
(``postgres_views``).

Adding an entity kind to the read model (a new ``dict`` attribute, say
``computers``) takes one line in :data:`KINDS`; ``tests/test_projections.py``
fails while a read-model attribute is neither in :data:`KINDS` nor in
:data:`NOT_PERSISTED`.
"""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from threading import Event
from typing import Any

import attrs
import orjson
from eventsourcing.persistence import (
    IntegrityError,
    Tracking,
    TrackingRecorder,
    WaitInterruptedError,
)

from ..adapters.mapper import converter
from ..domain.computer import ComputerState
from ..domain.directory import DirectoryState
from ..domain.ids import ComputerId, PoolId, PublicId, TaskId, UserId
from ..domain.license import LicenseState
from ..domain.pool import PoolState
from ..domain.saved_filters import FiltersState
from ..domain.tags import TagsState
from ..domain.task import TaskState
from .memory import ReadModel, _details
from .views import HistoryEntry

APPLICATION_NAME = "LicenseManagement"

#: (kind, key, pool, group, state JSON or None for "gone")
EntityRow = tuple[str, str, "str | None", "str | None", "bytes | None"]


@attrs.frozen
class AuditRow:
    """One event in the audit view (R29): who, when, what, which targets.

    The event itself is kept as stored (topic and state bytes, encrypted if the
    store encrypts), so ``details`` are decoded only when someone reads them.
    """

    position: int
    at: str
    actor: str
    what: str
    targets: tuple[str, ...]
    originator_id: str
    originator_version: int
    state: bytes


def _mask_key(data: dict[str, Any]) -> dict[str, Any]:
    """Views never hold a license key (R2): keep a stand-in with the same last four."""
    key = data.get("key")
    if key:
        data["key"] = "0000-0000-0000-0000-" + str(key)[-4:]
    return data


@attrs.frozen
class Kind:
    """One kind of entity of the read model and how it is kept as rows."""

    name: str
    #: the ReadModel attribute: a dict by key, or a single state (``key_of`` None)
    attribute: str
    state_type: Any
    key_of: Callable[[str], Any] | None = None
    #: the indexed (pool, group) columns of a row
    columns: Callable[[Any], tuple[str | None, str | None]] = lambda s: (None, None)
    #: last touch to the unstructured state before it is stored
    scrub: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    @property
    def singleton(self) -> bool:
        return self.key_of is None


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


KINDS: tuple[Kind, ...] = (
    Kind("directory", "directory", DirectoryState),
    Kind("tags", "tags", TagsState),
    Kind("pool", "pools", PoolState, PoolId, lambda s: (None, _opt(s.group))),
    Kind(
        "license", "licenses", LicenseState, PublicId, lambda s: (_opt(s.pool_id), None), _mask_key
    ),
    Kind("filters", "filters", FiltersState, UserId),
    Kind("tags_of", "tags_of", frozenset[str], str),
    # per-computer validity (R9): products, their licenses and activation, by group
    Kind("computer", "computers", ComputerState, ComputerId, lambda s: (None, _opt(s.group))),
    Kind("task", "tasks", TaskState, TaskId),
)

#: read-model attributes deliberately not kept as entity rows, and why
NOT_PERSISTED: Mapping[str, str] = {
    "position": "kept as the tracking record",
    "audit": "kept as audit rows, written as events come",
    "seen": "the command side's own bookkeeping",
    "accounts": "account credentials stay in the event store only; no query reads accounts",
}

_UNSTRUCTURE = {k.name: converter.get_unstructure_hook(k.state_type) for k in KINDS}
KIND_BY_NAME = {k.name: k for k in KINDS}


def encode_state(kind: Kind, state: Any) -> bytes:
    data = _UNSTRUCTURE[kind.name](state)
    if kind.scrub is not None:
        data = kind.scrub(data)
    return orjson.dumps(data)


def decode_state(kind: Kind, data: bytes) -> Any:
    return converter.structure(orjson.loads(data), kind.state_type)


# -- the store interface --------------------------------------------------------------


class ViewStore(TrackingRecorder):
    """Where views persist: entity rows, audit rows and the tracking record."""

    application_name = APPLICATION_NAME
    #: fastest and slowest poll of ``wait``
    wait_min_interval = 0.005
    wait_max_interval = 0.1

    @abstractmethod
    def write(
        self,
        tracking: Tracking,
        entities: Sequence[EntityRow] = (),
        audit: Sequence[AuditRow] = (),
        *,
        previous: int | bool | None = False,
    ) -> None:
        """Write rows and the tracking record in one transaction.

        With ``previous`` (an int, or None for "no record yet") the write is a
        compare-and-set: it fails with ``IntegrityError`` unless the recorded
        position is exactly that, so two runners can never both apply the same
        events. Without it, the rule of ``insert_tracking`` holds: the new id
        must be greater than any recorded one.
        """

    @abstractmethod
    def changes_since(self, position: int) -> tuple[int, list[EntityRow]]:
        """The application's tracking position and every entity row written
        after ``position``, read in one consistent snapshot."""

    @abstractmethod
    def history(self, target: str) -> list[AuditRow]:
        """Audit rows naming ``target``, in log order."""

    @abstractmethod
    def audit_rows(self) -> list[AuditRow]:
        """Every audit row in log order (for comparisons and exports)."""

    @abstractmethod
    def drop(self) -> None:
        """Remove every view row and tracking record (before a rebuild)."""

    def close(self) -> None:
        """Release connections."""

    def insert_tracking(self, tracking: Tracking) -> None:
        self.write(tracking)

    def wait(
        self,
        application_name: str,
        notification_id: int | None,
        timeout: float = 1.0,
        interrupt: Event | None = None,
    ) -> None:
        """Like eventsourcing's, but polling from 5 ms up to 100 ms (not 100-800 ms)."""
        deadline = time.monotonic() + timeout
        interval = self.wait_min_interval
        while not self.has_tracking_id(application_name, notification_id):
            if interrupt is not None and interrupt.is_set():
                raise WaitInterruptedError
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"Timed out waiting for notification {notification_id} "
                    f"from application '{application_name}' to be processed"
                )
            pause = min(interval, remaining)
            if interrupt is not None:
                if interrupt.wait(pause):
                    raise WaitInterruptedError
            else:
                time.sleep(pause)
            interval = min(interval * 2, self.wait_max_interval)

    # -- reading the rows back -------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Everything the views hold, decoded: equal dumps mean equal views.

        States are compared decoded (a set's JSON order is not meaningful); the
        row's write position is bookkeeping and left out.
        """
        position, rows = self.changes_since(0)
        entities = {
            (kind, key): (pool, grp, decode_state(KIND_BY_NAME[kind], state))
            for kind, key, pool, grp, state in rows
            if state is not None
        }
        return {"position": position, "entities": entities, "audit": self.audit_rows()}


class MemoryViewStore(ViewStore):
    """Views in dictionaries, for embedding and tests; one lock for atomicity."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._tracking: dict[str, int] = {}
        self._rows: dict[tuple[str, str], tuple[int, EntityRow]] = {}
        self._audit: dict[int, AuditRow] = {}

    def write(
        self,
        tracking: Tracking,
        entities: Sequence[EntityRow] = (),
        audit: Sequence[AuditRow] = (),
        *,
        previous: int | bool | None = False,
    ) -> None:
        with self._lock:
            current = self._tracking.get(tracking.application_name)
            if previous is not False:
                if current != previous:
                    raise IntegrityError(
                        f"tracking of {tracking.application_name} is at {current}, not {previous}"
                    )
            elif current is not None and current >= tracking.notification_id:
                raise IntegrityError(
                    f"tracking of {tracking.application_name} is already at {current}"
                )
            if any(a.position in self._audit for a in audit):
                raise IntegrityError("audit row already written")
            for row in entities:
                self._rows[(row[0], row[1])] = (tracking.notification_id, row)
            for a in audit:
                self._audit[a.position] = a
            self._tracking[tracking.application_name] = tracking.notification_id
            self._lock.notify_all()

    def max_tracking_id(self, application_name: str) -> int | None:
        with self._lock:
            return self._tracking.get(application_name)

    def changes_since(self, position: int) -> tuple[int, list[EntityRow]]:
        with self._lock:
            at = self._tracking.get(self.application_name) or 0
            return at, [row for pos, row in self._rows.values() if pos > position]

    def history(self, target: str) -> list[AuditRow]:
        with self._lock:
            return [self._audit[p] for p in sorted(self._audit) if target in self._audit[p].targets]

    def audit_rows(self) -> list[AuditRow]:
        with self._lock:
            return [self._audit[p] for p in sorted(self._audit)]

    def drop(self) -> None:
        with self._lock:
            self._tracking.clear()
            self._rows.clear()
            self._audit.clear()


# -- SQL backends share their statements ---------------------------------------------------


class SQLViewStore(ViewStore):
    """Views as tables; subclasses give a connection, a dialect and error mapping.

    Tables (``prefix`` names them): ``entities`` (kind, key, pool, grp, pos,
    state) with indexes on (kind, pool), (kind, grp) and pos; ``audit``
    (position, at, actor, what, targets, originator_id, originator_version,
    state); ``audit_targets`` (target, position) for history by target; and
    ``tracking`` (application_name, notification_id), one row per application.
    """

    placeholder = "?"
    blob = "BLOB"
    bigint = "INTEGER"
    without_rowid = ""

    def __init__(self, prefix: str) -> None:
        self.entities = f"{prefix}entities"
        self.audit = f"{prefix}audit"
        self.audit_targets = f"{prefix}audit_targets"
        self.tracking = f"{prefix}tracking"
        self._index_prefix = prefix.rsplit(".", 1)[-1].strip('"')

    # -- what subclasses give -----------------------------------------------------------

    @abstractmethod
    def _transaction(self, *, write: bool) -> Any:
        """A context manager giving a cursor inside one transaction."""

    @abstractmethod
    def _is_integrity_error(self, e: BaseException) -> bool: ...

    def _q(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    # -- schema ---------------------------------------------------------------------

    def create_statements(self) -> list[str]:
        ix = self._index_prefix
        return [
            f"CREATE TABLE IF NOT EXISTS {self.entities} (kind TEXT NOT NULL, key TEXT NOT NULL, "
            f"pool TEXT, grp TEXT, pos {self.bigint} NOT NULL, state {self.blob}, "
            # a rowid table: states are too wide for WITHOUT ROWID to pay off
            "PRIMARY KEY (kind, key))",
            f"CREATE INDEX IF NOT EXISTS {ix}entities_pos ON {self.entities} (pos)",
            f"CREATE INDEX IF NOT EXISTS {ix}entities_pool ON {self.entities} (kind, pool)",
            f"CREATE INDEX IF NOT EXISTS {ix}entities_grp ON {self.entities} (kind, grp)",
            f"CREATE TABLE IF NOT EXISTS {self.audit} (position {self.bigint} PRIMARY KEY, "
            "at TEXT NOT NULL, actor TEXT NOT NULL, what TEXT NOT NULL, targets TEXT NOT NULL, "
            f"originator_id TEXT NOT NULL, originator_version {self.bigint} NOT NULL, "
            f"state {self.blob} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.audit_targets} (target TEXT NOT NULL, "
            f"position {self.bigint} NOT NULL, PRIMARY KEY (target, position)){self.without_rowid}",
            f"CREATE TABLE IF NOT EXISTS {self.tracking} (application_name TEXT PRIMARY KEY, "
            f"notification_id {self.bigint} NOT NULL)",
        ]

    def drop(self) -> None:
        with self._transaction(write=True) as c:
            for table in (self.entities, self.audit, self.audit_targets, self.tracking):
                c.execute(f"DELETE FROM {table}")

    # -- writing --------------------------------------------------------------------

    def write(
        self,
        tracking: Tracking,
        entities: Sequence[EntityRow] = (),
        audit: Sequence[AuditRow] = (),
        *,
        previous: int | bool | None = False,
    ) -> None:
        name, nid = tracking.application_name, tracking.notification_id
        try:
            with self._transaction(write=True) as c:
                if previous is False:
                    c.execute(
                        self._q(
                            f"INSERT INTO {self.tracking} VALUES (?, ?) "
                            "ON CONFLICT (application_name) DO UPDATE "
                            "SET notification_id = excluded.notification_id "
                            f"WHERE {self.tracking}.notification_id < excluded.notification_id "
                            "RETURNING notification_id"
                        ),
                        (name, nid),
                    )
                elif previous is None:
                    c.execute(
                        self._q(
                            f"INSERT INTO {self.tracking} VALUES (?, ?) "
                            "ON CONFLICT (application_name) DO NOTHING RETURNING notification_id"
                        ),
                        (name, nid),
                    )
                else:
                    c.execute(
                        self._q(
                            f"UPDATE {self.tracking} SET notification_id = ? "
                            "WHERE application_name = ? AND notification_id = ? "
                            "RETURNING notification_id"
                        ),
                        (nid, name, previous),
                    )
                if c.fetchone() is None:
                    raise IntegrityError(
                        f"tracking of {name} does not allow notification {nid} "
                        f"(expected previous: {previous})"
                    )
                if entities:
                    c.executemany(
                        self._q(
                            f"INSERT INTO {self.entities} (kind, key, pool, grp, pos, state) "
                            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET "
                            "pool = excluded.pool, grp = excluded.grp, pos = excluded.pos, "
                            "state = excluded.state"
                        ),
                        [(k, key, pool, grp, nid, state) for k, key, pool, grp, state in entities],
                    )
                if audit:
                    c.executemany(
                        self._q(f"INSERT INTO {self.audit} VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                        [
                            (
                                a.position,
                                a.at,
                                a.actor,
                                a.what,
                                orjson.dumps(a.targets).decode(),
                                a.originator_id,
                                a.originator_version,
                                a.state,
                            )
                            for a in audit
                        ],
                    )
                    c.executemany(
                        self._q(f"INSERT INTO {self.audit_targets} VALUES (?, ?)"),
                        [(t, a.position) for a in audit for t in set(a.targets)],
                    )
        except IntegrityError:
            raise
        except Exception as e:
            if self._is_integrity_error(e):
                raise IntegrityError(str(e)) from e
            raise

    # -- reading ----------------------------------------------------------------------

    def max_tracking_id(self, application_name: str) -> int | None:
        with self._transaction(write=False) as c:
            c.execute(
                self._q(f"SELECT notification_id FROM {self.tracking} WHERE application_name = ?"),
                (application_name,),
            )
            row = c.fetchone()
        return None if row is None else int(row[0])

    def changes_since(self, position: int) -> tuple[int, list[EntityRow]]:
        # One statement: one consistent snapshot of position and rows.
        with self._transaction(write=False) as c:
            c.execute(
                self._q(
                    "SELECT t.notification_id, e.kind, e.key, e.pool, e.grp, e.state "
                    f"FROM {self.tracking} t LEFT JOIN {self.entities} e ON e.pos > ? "
                    "WHERE t.application_name = ?"
                ),
                (position, self.application_name),
            )
            rows = c.fetchall()
        if not rows:
            return 0, []
        at = int(rows[0][0])
        return at, [
            (kind, key, pool, grp, None if state is None else bytes(state))
            for _, kind, key, pool, grp, state in rows
            if kind is not None
        ]

    def _audit_rows(self, c: Any) -> list[AuditRow]:
        return [
            AuditRow(
                position=int(r[0]),
                at=r[1],
                actor=r[2],
                what=r[3],
                targets=tuple(orjson.loads(r[4])),
                originator_id=r[5],
                originator_version=int(r[6]),
                state=bytes(r[7]),
            )
            for r in c.fetchall()
        ]

    _AUDIT_COLUMNS = (
        "a.position, a.at, a.actor, a.what, a.targets, a.originator_id, "
        "a.originator_version, a.state"
    )

    def history(self, target: str) -> list[AuditRow]:
        with self._transaction(write=False) as c:
            c.execute(
                self._q(
                    f"SELECT {self._AUDIT_COLUMNS} FROM {self.audit_targets} t "
                    f"JOIN {self.audit} a ON a.position = t.position "
                    "WHERE t.target = ? ORDER BY t.position"
                ),
                (target,),
            )
            return self._audit_rows(c)

    def audit_rows(self) -> list[AuditRow]:
        with self._transaction(write=False) as c:
            c.execute(f"SELECT {self._AUDIT_COLUMNS} FROM {self.audit} a ORDER BY a.position")
            return self._audit_rows(c)


# -- feeding a read model from rows ------------------------------------------------------


class TrackedDict(dict[Any, Any]):
    """A dict that remembers which keys were set or removed since ``changed`` was cleared."""

    __slots__ = ("changed",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.changed: set[Any] = set()

    def __setitem__(self, key: Any, value: Any) -> None:
        self.changed.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.changed.add(key)
        super().__delitem__(key)

    def pop(self, key: Any, *default: Any) -> Any:
        self.changed.add(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        item = super().popitem()
        self.changed.add(item[0])
        return item

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self.changed.add(key)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        other = dict(*args, **kwargs)
        self.changed.update(other)
        super().update(other)

    def clear(self) -> None:
        self.changed.update(self)
        super().clear()


def apply_rows(model: ReadModel, rows: Sequence[EntityRow]) -> None:
    """Put entity rows into a read model (a load or a refresh)."""
    for kind_name, key, _pool, _grp, state in rows:
        kind = KIND_BY_NAME.get(kind_name)
        if kind is None:  # written by a newer version: not ours to show
            continue
        if kind.key_of is None:
            if state is not None:
                setattr(model, kind.attribute, decode_state(kind, state))
            continue
        target: dict[Any, Any] = getattr(model, kind.attribute)
        k = kind.key_of(key)
        if state is None:
            target.pop(k, None)
        else:
            target[k] = decode_state(kind, state)
    model._visible_cache.clear()


def dirty_rows(model: ReadModel, committed: dict[str, Any]) -> list[EntityRow]:
    """The rows of entities changed since the last call; resets the change marks.

    ``committed`` remembers the singletons last written (compared by identity:
    states are immutable, so a changed one is a new object).
    """
    rows: list[EntityRow] = []
    for kind in KINDS:
        value = getattr(model, kind.attribute)
        if kind.key_of is None:
            if committed.get(kind.name) is not value:
                committed[kind.name] = value
                rows.append((kind.name, "", None, None, encode_state(kind, value)))
            continue
        assert isinstance(value, TrackedDict)
        for key in value.changed:
            state = value.get(key)
            if state is None:
                rows.append((kind.name, str(key), None, None, None))
            else:
                pool, grp = kind.columns(state)
                rows.append((kind.name, str(key), pool, grp, encode_state(kind, state)))
        value.changed.clear()
    return rows


def tracked_model(rows: Sequence[EntityRow] = (), position: int = 0) -> ReadModel:
    """A read model whose entity dicts record what changes in them."""
    model = ReadModel()
    for kind in KINDS:
        if kind.key_of is not None:
            setattr(model, kind.attribute, TrackedDict(getattr(model, kind.attribute)))
    apply_rows(model, rows)
    for kind in KINDS:
        if kind.key_of is not None:
            getattr(model, kind.attribute).changed.clear()
    model.position = position
    return model


class ViewsReadModel(ReadModel):
    """A read model kept in step with a view store (deployed mode).

    ``refresh`` reads only the rows written since its last refresh, so a query
    costs one indexed select of what changed; the queries themselves are the
    read model's own, visibility first (R14). History reads the audit view.
    """

    def __init__(self, store: ViewStore, decode_event: Callable[[AuditRow], Any]) -> None:
        super().__init__()
        self.store = store
        self._decode_event = decode_event

    def refresh(self) -> None:
        position, rows = self.store.changes_since(self.position)
        if rows:
            apply_rows(self, rows)
        self.position = position

    def history_of(self, target: str) -> list[HistoryEntry]:
        out = []
        for row in self.store.history(target):
            event = self._decode_event(row)
            out.append(
                HistoryEntry(
                    when=event.timestamp,
                    actor=self.actor_name(row.actor),
                    what=row.what,
                    target=target,
                    details=_details(event),
                    position=row.position,
                )
            )
        return out


# -- opening a store from a setting ---------------------------------------------------------


def open_view_store(spec: str, env: Mapping[str, str] | None = None) -> ViewStore:
    """``memory``, ``sqlite:PATH`` or ``postgres`` (the ``POSTGRES_*`` settings of ``env``).

    This is the ``ESMC_VIEWS`` setting of an application and ``--views`` of the CLI.
    """
    spec = spec.strip()
    if spec == "memory":
        return MemoryViewStore()
    if spec.startswith("sqlite:"):
        from .sqlite_views import SQLiteViewStore

        return SQLiteViewStore(spec[len("sqlite:") :])
    if spec in ("postgres", "postgresql"):
        from .postgres_views import PostgresViewStore

        return PostgresViewStore.from_env(env or {})
    from ..domain.errors import InvalidInput

    raise InvalidInput(
        f"views are 'memory', 'sqlite:PATH' or 'postgres', not {spec!r}"
    )


__all__ = [
    "KINDS",
    "NOT_PERSISTED",
    "AuditRow",
    "EntityRow",
    "Kind",
    "MemoryViewStore",
    "TrackedDict",
    "ViewStore",
    "ViewsReadModel",
    "open_view_store",
]
