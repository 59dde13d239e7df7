"""Persistent views: the read model's entities as rows, written with their tracking record.

The in-memory :class:`~esmc_licensing.projections.memory.ReadModel` stays the
single source of truth for what an event means (it folds with the domain's own
``evolve`` functions; the runner's fast folds are checked against it). A view
store persists what a batch of events changed in it -- one row per entity
(kind, key) holding the entity's state as JSON plus a few indexed columns (a
license's pool, a pool's group) -- and the audit view, an index of the log
by target (one (target, position) row per target of an event: the events
themselves are read from the log, which is the audit), together with the
tracking record of the batch's last notification id, in ONE transaction. A
crash therefore never applies an event twice or skips one: rows and position
commit or roll back together.

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
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
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
from ..domain import computer, license
from ..domain.computer import ComputerState
from ..domain.directory import DirectoryState
from ..domain.events import CLASSES
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


#: one audit reference: (target, notification id) -- the log itself is the audit
AuditRef = tuple[str, int]

#: audit references grouped by target: target -> its notification ids, ascending
AuditIndex = Mapping[str, Sequence[int]]


def audit_index(audit: Sequence[AuditRef] | AuditIndex) -> AuditIndex:
    """References as an index by target (what the stores write), whichever was given.

    The runner collects its references as an index already (one append per
    target of an event, no tuple per reference); callers with a few loose
    references (tests, ``insert_tracking``) may pass them as pairs.
    """
    if isinstance(audit, Mapping):
        return audit
    by_target: dict[str, list[int]] = {}
    for target, position in audit:
        by_target.setdefault(target, []).append(position)
    for positions in by_target.values():
        positions.sort()
    return by_target


class SplitAuditIndex(Mapping[str, Sequence[int]]):
    """A runner's audit index: licenses' and computers' references keyed by the
    entity's own key (in :attr:`CodecDict.refs`), every other target's by its
    whole name.

    A rebuild holds a reference array for every license and computer until it
    commits; keyed by the key string the entity dict already holds, they
    cost no second string of about 90 bytes each (10 MiB for 100,000
    computers) and no hash of a freshly concatenated ``"computer:" + id`` per
    event. The full target names are made only as the store writes them.
    """

    __slots__ = ("groups", "rest")

    def __init__(self, rest: dict[str, Any], groups: Mapping[str, dict[str, Any]]) -> None:
        #: targets not of a kind in ``groups``, by full name
        self.rest = rest
        #: prefix (``"license:"``) -> key -> positions; ``rest`` holds no such target
        self.groups = groups

    def __getitem__(self, target: str) -> Sequence[int]:
        kind, colon, key = target.partition(":")
        group = self.groups.get(kind + colon) if colon else None
        if group is not None:
            return group[key]  # type: ignore[no-any-return]
        return self.rest[target]  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        for target, _ in self.sorted_items():
            yield target

    def __len__(self) -> int:
        return len(self.rest) + sum(len(g) for g in self.groups.values())

    def sorted_items(self) -> Iterator[tuple[str, Sequence[int]]]:
        """(target, positions) in target order, each group's names made as they go."""
        rest = self.rest
        names = sorted(rest)
        i = 0
        for prefix in sorted(self.groups):
            # every name of the group sorts after ``prefix`` and before the
            # names of ``rest`` that follow it (``rest`` holds none of them)
            j = bisect_left(names, prefix)
            for name in names[i:j]:
                yield name, rest[name]
            i = j
            group = self.groups[prefix]
            for key in sorted(group):
                yield prefix + key, group[key]
        for name in names[i:]:
            yield name, rest[name]


def sorted_audit_items(index: AuditIndex) -> Iterator[tuple[str, Sequence[int]]]:
    """An index's (target, positions) in target order (the order stores write fastest)."""
    if isinstance(index, SplitAuditIndex):
        return index.sorted_items()
    return ((t, index[t]) for t in sorted(index))


#: the layout of the view tables; a store whose recorded version differs is
#: dropped and recreated empty (views are derived data: the runner rebuilds them)
SCHEMA_VERSION = 2


@attrs.frozen
class AuditRow:
    """One event in the audit view (R29): its position in the log and its targets.

    The audit view is an index, not a copy: who, when and what are read from
    the event itself in the log (which is the audit), by position, when
    someone asks for a history.
    """

    position: int
    targets: tuple[str, ...]


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
    "states": "the command side's index of the same states, by aggregate id",
    "accounts": "account credentials stay in the event store only; no query reads accounts",
}

_UNSTRUCTURE = {k.name: converter.get_unstructure_hook(k.state_type) for k in KINDS}
KIND_BY_NAME = {k.name: k for k in KINDS}


def encode_state(kind: Kind, state: Any) -> bytes:
    data = _UNSTRUCTURE[kind.name](state)
    if kind.scrub is not None:
        data = kind.scrub(data)
    # a copy of exact size: orjson's buffer keeps kilobytes of spare capacity
    return bytes(memoryview(orjson.dumps(data)))


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
        entities: Iterable[EntityRow] = (),
        audit: Sequence[AuditRef] | AuditIndex = (),
        *,
        previous: int | bool | None = False,
    ) -> None:
        """Write rows and the tracking record in one transaction.

        ``entities`` may be any iterable (the runner's is a generator that
        encodes each entity as the store takes it, see :func:`dirty_rows`);
        rows are written in the order given, and key order writes fastest.
        ``audit`` holds (target, notification id) references, one per target
        of an event: as pairs, or as an index by target (positions ascending,
        see :func:`audit_index`).

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
    def history(self, target: str) -> list[int]:
        """The log positions of the events naming ``target``, in log order."""

    @abstractmethod
    def audit_refs(self) -> list[AuditRef]:
        """Every (target, position) reference, in no particular order."""

    def audit_rows(self) -> list[AuditRow]:
        """Every audited event with its targets, in log order (for comparisons)."""
        by_position: dict[int, list[str]] = {}
        for target, position in self.audit_refs():
            by_position.setdefault(position, []).append(target)
        return [AuditRow(p, tuple(sorted(by_position[p]))) for p in sorted(by_position)]

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
        self._audit: dict[str, list[int]] = {}
        self._refs: set[AuditRef] = set()

    def write(
        self,
        tracking: Tracking,
        entities: Iterable[EntityRow] = (),
        audit: Sequence[AuditRef] | AuditIndex = (),
        *,
        previous: int | bool | None = False,
    ) -> None:
        index = audit_index(audit)
        refs_list = [(t, p) for t, positions in index.items() for p in positions]
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
            refs = set(refs_list)
            if len(refs) != len(refs_list) or not self._refs.isdisjoint(refs):
                raise IntegrityError("audit row already written")
            for row in entities:
                self._rows[(row[0], row[1])] = (tracking.notification_id, row)
            for target, positions in index.items():
                self._audit.setdefault(target, []).extend(positions)
            self._refs |= refs
            self._tracking[tracking.application_name] = tracking.notification_id
            self._lock.notify_all()

    def max_tracking_id(self, application_name: str) -> int | None:
        with self._lock:
            return self._tracking.get(application_name)

    def changes_since(self, position: int) -> tuple[int, list[EntityRow]]:
        with self._lock:
            at = self._tracking.get(self.application_name) or 0
            return at, [row for pos, row in self._rows.values() if pos > position]

    def history(self, target: str) -> list[int]:
        with self._lock:
            return sorted(self._audit.get(target, ()))

    def audit_refs(self) -> list[AuditRef]:
        with self._lock:
            return list(self._refs)

    def drop(self) -> None:
        with self._lock:
            self._tracking.clear()
            self._rows.clear()
            self._audit.clear()
            self._refs.clear()


# -- SQL backends share their statements ---------------------------------------------------


class SQLViewStore(ViewStore):
    """Views as tables; subclasses give a connection, a dialect and error mapping.

    Tables (``prefix`` names them): ``entities`` (kind, key, pool, grp, pos,
    state) with indexes on (kind, pool), (kind, grp) and pos; ``audit``
    (target, position): an index of the log by target, for history (the
    events themselves are read from the log); ``tracking``
    (application_name, notification_id), one row per application; and
    ``meta`` (the schema version: tables of another version are dropped and
    recreated empty when the store is opened, to be rebuilt).
    """

    placeholder = "?"
    blob = "BLOB"
    bigint = "INTEGER"
    without_rowid = ""

    def __init__(self, prefix: str) -> None:
        self.entities = f"{prefix}entities"
        self.audit = f"{prefix}audit"
        self.tracking = f"{prefix}tracking"
        self.meta = f"{prefix}meta"
        #: tables of earlier schema versions, dropped on upgrade
        self.old_tables = (f"{prefix}audit_targets",)
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
            f"CREATE TABLE IF NOT EXISTS {self.audit} (target TEXT NOT NULL, "
            f"position {self.bigint} NOT NULL, PRIMARY KEY (target, position)){self.without_rowid}",
            f"CREATE TABLE IF NOT EXISTS {self.tracking} (application_name TEXT PRIMARY KEY, "
            f"notification_id {self.bigint} NOT NULL)",
        ]

    def create_tables(self, c: Any) -> None:
        """Create the tables, first dropping those of another schema version."""
        c.execute(f"CREATE TABLE IF NOT EXISTS {self.meta} (key TEXT PRIMARY KEY, value TEXT)")
        c.execute(self._q(f"SELECT value FROM {self.meta} WHERE key = ?"), ("schema",))
        row = c.fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            for table in (*self.old_tables, self.audit, self.entities, self.tracking):
                c.execute(f"DROP TABLE IF EXISTS {table}")
            c.execute(self._q(f"DELETE FROM {self.meta} WHERE key = ?"), ("schema",))
            c.execute(
                self._q(f"INSERT INTO {self.meta} VALUES (?, ?)"), ("schema", str(SCHEMA_VERSION))
            )
        for statement in self.create_statements():
            c.execute(statement)

    def drop(self) -> None:
        with self._transaction(write=True) as c:
            for table in (self.entities, self.audit, self.tracking):
                c.execute(f"DELETE FROM {table}")

    # -- writing --------------------------------------------------------------------

    def write(
        self,
        tracking: Tracking,
        entities: Iterable[EntityRow] = (),
        audit: Sequence[AuditRef] | AuditIndex = (),
        *,
        previous: int | bool | None = False,
    ) -> None:
        name, nid = tracking.application_name, tracking.notification_id
        index = audit_index(audit)
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
                # rows as they come: the runner's come in key order, kind by kind
                c.executemany(
                    self._q(
                        f"INSERT INTO {self.entities} (kind, key, pool, grp, pos, state) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET "
                        "pool = excluded.pool, grp = excluded.grp, pos = excluded.pos, "
                        "state = excluded.state"
                    ),
                    ((k, key, pool, grp, nid, state) for k, key, pool, grp, state in entities),
                )
                if index:
                    self._insert_audit(c, index)
        except IntegrityError:
            raise
        except Exception as e:
            if self._is_integrity_error(e):
                raise IntegrityError(str(e)) from e
            raise

    def _insert_audit(self, c: Any, index: AuditIndex) -> None:
        """Insert the references in key order: each index page is visited once."""
        c.executemany(
            self._q(f"INSERT INTO {self.audit} VALUES (?, ?)"),
            ((t, p) for t, positions in sorted_audit_items(index) for p in positions),
        )

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

    def history(self, target: str) -> list[int]:
        with self._transaction(write=False) as c:
            c.execute(
                self._q(f"SELECT position FROM {self.audit} WHERE target = ? ORDER BY position"),
                (target,),
            )
            return [int(r[0]) for r in c.fetchall()]

    def audit_refs(self) -> list[AuditRef]:
        with self._transaction(write=False) as c:
            c.execute(f"SELECT target, position FROM {self.audit}")
            return [(r[0], int(r[1])) for r in c.fetchall()]


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


_MISSING: Any = object()


def merge_patch(data: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """Apply pending changes (:meth:`CodecDict.patch`) to an unstructured state.

    A key is a field to set, or an operation on a field, named by its first
    character: ``+field`` appends each item not yet in the list, in order;
    ``>field`` sets an ISO time if it is later than the field's (or the
    field is None); ``.field`` sets keys of a nested dict. Each agrees with
    doing the same changes one event at a time: the first of equal times
    stays, a list never gets an item twice, nested keys keep their order.
    """
    for key, value in patch.items():
        op = key[0]
        if op == "+":
            items = data[key[1:]]
            for item in value:
                if item not in items:
                    items.append(item)
        elif op == ">":
            field = key[1:]
            current = data[field]
            if current is None or _fromiso(value) > _fromiso(current):
                data[field] = value
        elif op == ".":
            data[key[1:]].update(value)
        else:
            data[key] = value


_fromiso = datetime.fromisoformat


class CodecDict:
    """A read model's entities of one kind, held as their stored JSON (a runner's).

    A projection runner holds every license and computer of the store; kept as
    attrs objects they cost several times the memory of their JSON. Here an
    entity is its encoded state (``bytes``), or its unstructured ``dict``
    while it is being changed. ``get`` and ``[]`` decode to the domain state
    (for the read model's ``evolve``); ``raw`` hands the dict to the runner's
    fast paths, which change it in place.

    The frequent small changes (a usage report, a check-in, a seat) do not
    even decode the entity: the fast folds record them in a *patch* of the
    entity (:meth:`patch`, :func:`merge_patch`), merged when the entity is
    next needed whole -- by the slow path, or when it is written. Parsing and
    re-encoding a computer for every check-in was most of a rebuild's
    folding time; a patch costs a dict lookup and two stores.

    Changed entities stay marked until :meth:`commit_rows`; past
    :attr:`max_dicts` changed dicts they are encoded back to bytes (still
    marked), so memory stays flat however many events a batch holds. Keys
    are compared as strings.
    """

    __slots__ = ("_dicts", "clean", "dirty", "kind", "patches", "pending_refs", "refs", "typecode")

    #: how many changed entities are kept as dicts before they are re-encoded
    max_dicts = 2_000
    #: how many entities may have pending changes before they are all merged
    #: (a check-in's patch costs about 300 bytes: 100,000 of them would be 30 MB).
    #: Each merge parses and re-encodes the entity (about 4 µs amid a
    #: rebuild's 100,000 computers); a rebuild of 1,000,000 events merged
    #: 225,000 times at 25,000 and 150,000 at 50,000 (0.3 s less, 6.5 MiB more)
    max_patches = 50_000

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        #: unchanged since the last commit: the stored state
        self.clean: dict[str, bytes] = {}
        #: changed since the last commit: a dict or bytes, None when gone
        self.dirty: dict[str, Any] = {}
        #: changes not yet merged into an entity (a dict or bytes in ``dirty``)
        self.patches: dict[str, dict[str, Any]] = {}
        #: the keys put as dicts since the last compaction (``dirty`` may hold
        #: every entity of a rebuild: compaction must not walk all of it)
        self._dicts: list[str] = []
        #: audit references to these entities not yet written, by the entity's
        #: key (see :class:`SplitAuditIndex`); kept by the runner
        self.refs: dict[str, array[int]] = {}
        #: the array type of ``refs``: 4-byte positions until the log passes 2**32 - 1
        self.typecode = "I"
        #: how many references ``refs`` gained since the runner last counted
        self.pending_refs = 0

    def load(self, key: str, state: bytes | None) -> None:
        self.dirty.pop(key, None)
        self.patches.pop(key, None)
        if state is None:
            self.clean.pop(key, None)
        else:
            self.clean[key] = state

    def patch(self, key: str) -> dict[str, Any] | None:
        """The entity's pending changes, to add to (see :func:`merge_patch`); None if absent.

        The entity is marked changed.
        """
        found = self.patches.get(key)
        if found is not None:
            return found
        d = self.dirty.get(key, _MISSING)
        if d is _MISSING:
            d = self.clean.pop(key, None)
            if d is None:
                return None
            self.dirty[key] = d
        elif d is None:
            return None
        if len(self.patches) >= self.max_patches:
            self.merge_patches()
        found = self.patches[key] = {}
        return found

    def ref(self, key: str, position: int) -> None:
        """Record that the event at ``position`` names the entity (once per event)."""
        refs = self.refs.get(key)
        if refs is None:
            self.refs[key] = array(self.typecode, (position,))
        elif refs[-1] != position:
            refs.append(position)
        else:
            return
        self.pending_refs += 1

    def merge_patches(self) -> None:
        """Merge every pending change into its entity, encoded (it stays marked changed)."""
        dirty = self.dirty
        dumps = orjson.dumps
        loads = orjson.loads
        for key, patch in self.patches.items():
            d = dirty[key]
            if d.__class__ is dict:
                merge_patch(d, patch)
            else:
                d = loads(d)
                merge_patch(d, patch)
                dirty[key] = bytes(memoryview(dumps(d)))
        self.patches.clear()

    def raw(self, key: str) -> dict[str, Any] | None:
        """The unstructured state to change in place (marked changed), or None."""
        d: Any = self.dirty.get(key, _MISSING)
        if d.__class__ is not dict:
            if d is _MISSING:
                d = self.clean.pop(key, None)
            if d is None:
                return None
            d = self.put_raw(key, orjson.loads(d), keep_patch=True)
        data: dict[str, Any] = d
        if self.patches:
            patch = self.patches.pop(key, None)
            if patch is not None:
                merge_patch(data, patch)
        return data

    def put_raw(
        self, key: str, data: dict[str, Any], *, keep_patch: bool = False
    ) -> dict[str, Any]:
        """Hold ``data`` as the entity's state (changed), dropping pending changes
        unless ``keep_patch`` (``data`` is then the state they apply to)."""
        if len(self._dicts) >= self.max_dicts:
            self.compact()  # before, not after: ``data`` is about to be changed in place
        self.dirty[key] = data
        self.clean.pop(key, None)
        if not keep_patch:
            self.patches.pop(key, None)
        self._dicts.append(key)
        return data

    def compact(self) -> None:
        """Encode the changed dicts back to bytes (they stay marked changed)."""
        dumps = orjson.dumps
        dirty = self.dirty
        patches = self.patches
        for key in self._dicts:
            d = dirty.get(key)
            if d.__class__ is dict:
                patch = patches.pop(key, None)
                if patch is not None:
                    merge_patch(d, patch)
                dirty[key] = bytes(memoryview(dumps(d)))
        self._dicts = []

    def get(self, key: Any, default: Any = None) -> Any:
        k = str(key)
        if k in self.patches:
            d: Any = self.raw(k)
        else:
            d = self._encoded(k)
        if d is None:
            return default
        if d.__class__ is not dict:
            d = orjson.loads(d)
        return converter.structure(d, self.kind.state_type)

    def _encoded(self, key: str) -> Any:
        """bytes, a dict, or None (absent or gone); pending changes not merged."""
        d = self.dirty.get(key, _MISSING)
        if d is _MISSING:
            return self.clean.get(key)
        return d

    def __getitem__(self, key: Any) -> Any:
        found = self.get(key, _MISSING)
        if found is _MISSING:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return self._encoded(str(key)) is not None

    def __setitem__(self, key: Any, value: Any) -> None:
        data = _UNSTRUCTURE[self.kind.name](value)
        if self.kind.scrub is not None:
            data = self.kind.scrub(data)
        self.put_raw(str(key), data)

    def pop(self, key: Any, *default: Any) -> Any:
        found = self.get(key, _MISSING)
        if found is _MISSING:
            if default:
                return default[0]
            raise KeyError(key)
        k = str(key)
        self.clean.pop(k, None)
        self.patches.pop(k, None)
        self.dirty[k] = None
        return found

    def __len__(self) -> int:
        return len(self.clean) + sum(1 for d in self.dirty.values() if d is not None)

    def commit_rows(self) -> Iterator[EntityRow]:
        """Encode what changed into rows, in key order, keeping them as the clean states.

        A generator (see :func:`dirty_rows`); each entity's old encoding is
        let go as its new one is made, and when most entities changed (a
        rebuild) the changed ones become the clean ones in place, so the final
        write of a rebuild holds neither two copies of every entity nor two
        dicts of them.
        """
        name = self.kind.name
        raw_columns = RAW_COLUMNS.get(name, _no_columns)
        text_columns = TEXT_COLUMNS.get(name)
        clean = self.clean
        dirty = self.dirty
        patches = self.patches
        dumps = orjson.dumps
        loads = orjson.loads
        swap = len(clean) < len(dirty)
        gone = []
        for key in sorted(dirty):
            d = dirty[key]
            if d is None:
                gone.append(key)
                yield (name, key, None, None, None)
                continue
            patch = patches.pop(key, None)
            if patch is not None:
                if d.__class__ is not dict:
                    d = loads(d)
                merge_patch(d, patch)
            if d.__class__ is dict:
                # a copy of exact size: orjson's buffer keeps kilobytes of spare capacity
                b = bytes(memoryview(dumps(d)))
                pool, grp = raw_columns(d)
            else:
                b = d
                if text_columns is None:
                    pool, grp = raw_columns(loads(d))
                else:
                    pool, grp = text_columns(d)
                    if pool is _MISSING or grp is _MISSING:
                        pool, grp = raw_columns(loads(d))
            dirty[key] = b
            if not swap:
                clean[key] = b
            yield (name, key, pool, grp, b)
        if swap:  # keys are in ``clean`` or in ``dirty``, never both
            for key in gone:
                del dirty[key]
            dirty.update(clean)
            self.clean, self.dirty = dirty, {}
        else:
            for key in gone:
                clean.pop(key, None)
            dirty.clear()
        patches.clear()
        self._dicts = []


def _no_columns(data: dict[str, Any]) -> tuple[str | None, str | None]:
    return None, None


#: the indexed columns of a kind held in a CodecDict, from its unstructured state
RAW_COLUMNS: dict[str, Callable[[dict[str, Any]], tuple[str | None, str | None]]] = {
    "license": lambda d: (d.get("pool_id"), None),
    "computer": lambda d: (None, d.get("group")),
}
#: the kinds a runner holds as stored JSON (the many ones)
CODEC_KINDS = frozenset(RAW_COLUMNS)


def _top_level_text(initial: dict[str, Any], field: str) -> bool:
    """Whether ``field`` of this unstructured state is found first in its JSON
    text: only scalars come before it (no nested keys of that name can)."""
    names = list(initial)
    return field in initial and all(
        not isinstance(initial[n], dict | list) for n in names[: names.index(field)]
    )


def _text_column(field: str) -> Callable[[bytes], Any]:
    """Read one string column of an entity from its JSON text, without parsing it.

    A rebuild writes 100,000 entities whose JSON was not changed since it was
    encoded; parsing each again only for its pool or group was a twentieth
    of the final write. ``orjson`` escapes every ``"`` in a string, so
    ``,"group":`` can only be a key, and the first is the top level's (see
    :func:`_top_level_text`). Anything but ``null`` or a string without
    escapes gives ``_MISSING``: the caller parses the JSON instead.
    """
    needle = f',"{field}":'.encode()
    skip = len(needle)

    def column(encoded: bytes) -> Any:
        i = encoded.find(needle)
        if i < 0:
            return _MISSING
        i += skip
        if encoded.startswith(b"null", i):
            return None
        if encoded[i] != 0x22:  # '"'
            return _MISSING
        j = encoded.find(b'"', i + 1)
        value = encoded[i + 1 : j]
        if j < 0 or b"\\" in value:
            return _MISSING
        return value.decode()

    return column


def _text_columns() -> dict[str, Callable[[bytes], tuple[Any, Any]]]:
    found: dict[str, Callable[[bytes], tuple[Any, Any]]] = {}
    lic = _UNSTRUCTURE["license"](license.initial(PublicId("000-000-000")))
    if _top_level_text(lic, "pool_id"):
        pool_id = _text_column("pool_id")
        found["license"] = lambda b: (pool_id(b), None)
    com = _UNSTRUCTURE["computer"](
        computer.initial(ComputerId("00000000-0000-0000-0000-000000000000"))
    )
    if _top_level_text(com, "group"):
        group = _text_column("group")
        found["computer"] = lambda b: (None, group(b))
    return found


#: RAW_COLUMNS read from the JSON text (``_MISSING`` in a column: parse it)
TEXT_COLUMNS = _text_columns()


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
        target: Any = getattr(model, kind.attribute)
        if isinstance(target, CodecDict):
            target.load(key, state)
            continue
        k = kind.key_of(key)
        if state is None:
            target.pop(k, None)
        else:
            target[k] = decode_state(kind, state)
    model._visible_cache.clear()
    model.views_changed()


def dirty_rows(model: ReadModel, committed: dict[str, Any]) -> Iterator[EntityRow]:
    """The rows of entities changed since the last call, each kind in key order;
    resets the change marks as it goes.

    A generator, consumed by the store's write: a rebuild writes every entity
    at once, and a list of them (with their encoded states, and a sorted
    copy in the store) was the peak of its memory. ``committed`` remembers
    the singletons last written (compared by identity: states are immutable,
    so a changed one is a new object).
    """
    for kind in KINDS:
        value = getattr(model, kind.attribute)
        if kind.key_of is None:
            if committed.get(kind.name) is not value:
                committed[kind.name] = value
                yield (kind.name, "", None, None, encode_state(kind, value))
            continue
        if isinstance(value, CodecDict):
            yield from value.commit_rows()
            continue
        assert isinstance(value, TrackedDict)
        for key in sorted(value.changed, key=str):
            state = value.get(key)
            if state is None:
                yield (kind.name, str(key), None, None, None)
            else:
                pool, grp = kind.columns(state)
                yield (kind.name, str(key), pool, grp, encode_state(kind, state))
        value.changed.clear()


class _Forgetful(set[Any]):
    """A set that keeps nothing (a runner does not need the command side's ``seen``)."""

    def add(self, item: Any) -> None:
        pass


class _ForgetfulDict(dict[Any, Any]):
    """A dict that keeps nothing (a runner does not need the command side's ``states``)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def tracked_model(rows: Sequence[EntityRow] = (), position: int = 0) -> ReadModel:
    """A read model whose entity dicts record what changes in them (a runner's).

    Licenses and computers are held as their stored JSON (:class:`CodecDict`).
    """
    model = ReadModel()
    model.seen = _Forgetful()
    model.states = _ForgetfulDict()
    for kind in KINDS:
        if kind.key_of is not None:
            if kind.name in CODEC_KINDS:
                setattr(model, kind.attribute, CodecDict(kind))
            else:
                setattr(model, kind.attribute, TrackedDict(getattr(model, kind.attribute)))
    apply_rows(model, rows)
    for kind in KINDS:
        value = getattr(model, kind.attribute)
        if isinstance(value, TrackedDict):
            value.changed.clear()
    model.position = position
    return model


class ViewsReadModel(ReadModel):
    """A read model kept in step with a view store (deployed mode).

    ``refresh`` reads only the rows written since its last refresh, so a query
    costs one indexed select of what changed; the queries themselves are the
    read model's own, visibility first (R14). History reads the audit view
    (positions by target) and then those events from the log of ``app``.
    """

    def __init__(self, store: ViewStore, app: Any) -> None:
        super().__init__()
        self.store = store
        self._app = app
        self._source: Any = None

    def refresh(self) -> None:
        position, rows = self.store.changes_since(self.position)
        if rows:
            apply_rows(self, rows)
        self.position = position

    def history_of(self, target: str) -> list[HistoryEntry]:
        if self._source is None:
            from .runner import LogSource

            self._source = LogSource(self._app)
        out = []
        for position, event in self._source.events_at(self.store.history(target)):
            out.append(
                HistoryEntry(
                    when=event.timestamp,
                    actor=self.actor_name(event.actor),
                    what=CLASSES[type(event)].topic,
                    target=target,
                    details=_details(event),
                    position=position,
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
    "AuditIndex",
    "AuditRef",
    "AuditRow",
    "CodecDict",
    "EntityRow",
    "Kind",
    "MemoryViewStore",
    "SplitAuditIndex",
    "TrackedDict",
    "ViewStore",
    "ViewsReadModel",
    "open_view_store",
]
