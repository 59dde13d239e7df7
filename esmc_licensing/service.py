"""The service core every command and query stands on.

One path for every command: validate input -> authorise against the
directory -> ask adapters (before anything is saved) -> load aggregates ->
``decide`` -> save all events of the command in one atomic call. A lost race
on an aggregate version is retried from fresh state a bounded number of
times. Queries answer from the read model, caught up with the log first, so a
query after a command always sees it (and sees other processes' writes too).
"""

from __future__ import annotations

import bisect
import logging
import random
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import (
    Mapper,
    Notification,
    PersistenceError,
    RecordConflictError,
    Recording,
)
from eventsourcing.utils import Environment

from . import seals
from .adapters.mapper import EventMapper
from .adapters.sqlite_recorder import TOPIC as FAST_SQLITE_RECORDER
from .adapters.sqlite_recorder import FastSQLiteApplicationRecorder
from .domain import account, computer, directory, license, pool, saved_filters, tags, task
from .domain.directory import DirectoryState
from .domain.errors import (
    AdapterUnavailable,
    ConcurrencyConflict,
    InvalidInput,
    LicensingError,
    NotFound,
)
from .domain.events import DomainEvent, HistorySealed
from .domain.ids import (
    DIRECTORY_ID,
    TAGS_ID,
    ComputerId,
    GroupId,
    PoolId,
    PublicId,
    UserId,
    license_aggregate_id,
)
from .domain.license import LicenseState
from .domain.pool import PoolState
from .domain.values import Permission, Policy
from .projections.memory import (
    ACCOUNT_EVENTS,
    COMPUTER_EVENTS,
    DIRECTORY_EVENTS,
    FILTER_EVENTS,
    LICENSE_EVENTS,
    POOL_EVENTS,
    TAG_EVENTS,
    TASK_EVENTS,
    Evolved,
    ReadModel,
)
from .projections.store import ViewsReadModel, ViewStore, open_view_store
from .wiring import Adapters

log = logging.getLogger("esmc_licensing")

R = TypeVar("R")
S = TypeVar("S")

Decision = tuple[R, list[DomainEvent]]


class FoldedEvents(list[DomainEvent]):
    """New events with the states their decision already folded from them.

    ``folded`` maps id(event) to (event, state before, state after); after the
    save the read model takes "after" instead of folding the event again when
    its own state is that very "before" (``evolve`` is pure).
    """

    __slots__ = ("folded",)

    def __init__(self) -> None:
        super().__init__()
        self.folded: dict[int, tuple[DomainEvent, Any, Any]] = {}


_new = object.__new__
_set = object.__setattr__


def _notification(
    originator_id: uuid.UUID, version: int, topic: str, state: bytes, position: int
) -> Notification:
    """``Notification(...)`` without the frozen dataclass's per-field setattr
    (the same object: a test compares them); one per saved event."""
    n = _new(Notification)
    _set(
        n,
        "__dict__",
        {
            "originator_id": originator_id,
            "originator_version": version,
            "topic": topic,
            "state": state,
            "id": position,
        },
    )
    return n


def _recording(event: DomainEvent, notification: Notification) -> Recording[uuid.UUID]:
    """``Recording(event, notification)``, the same way as ``_notification``."""
    r = _new(Recording)
    _set(r, "__dict__", {"domain_event": event, "notification": notification})
    return r


def _notification_id(n: Notification) -> int:
    return n.id


EVOLVE: dict[type[DomainEvent], Callable[[Any, Any], Any]] = {
    **dict.fromkeys(DIRECTORY_EVENTS, directory.evolve),
    **dict.fromkeys(POOL_EVENTS, pool.evolve),
    **dict.fromkeys(LICENSE_EVENTS, license.evolve),
    **dict.fromkeys(TAG_EVENTS, tags.evolve),
    **dict.fromkeys(FILTER_EVENTS, saved_filters.evolve),
    **dict.fromkeys(ACCOUNT_EVENTS, account.evolve),
    **dict.fromkeys(COMPUTER_EVENTS, computer.evolve),
    **dict.fromkeys(TASK_EVENTS, task.evolve),
    HistorySealed: seals.evolve,
}

#: "not asked yet" in the permission memo (None is an answer: no permission)
_UNKNOWN: Any = object()

ADMINISTRATOR_ID = UserId.derive("administrator")
ALL_GROUP_ID = GroupId.derive("All")


class ServiceBase(Application[uuid.UUID]):
    """The license management of one console installation, over one event store.

    ``env`` takes eventsourcing's settings (PERSISTENCE_MODULE, SQLITE_DBNAME,
    POSTGRES_*, CIPHER_*, COMPRESSOR_TOPIC); with none it keeps everything in
    memory. ``adapters`` defaults to in-memory doubles, ``policy`` to
    ``Policy()``.
    """

    name = "LicenseManagement"
    log_section_size = 1000
    #: how many times a command that lost a race is decided again
    max_attempts = 16
    #: how many aggregate states the command side keeps in memory
    cache_size = 200_000
    #: how many of the newest notifications read from the store are kept for
    #: sealing (R31); the events of an own save are kept until ``_after_save``
    log_tail_limit = 10_000

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        adapters: Adapters | None = None,
        policy: Policy | None = None,
        views: ViewStore | None = None,
    ) -> None:
        self._open_store(env)
        self.adapters = adapters or Adapters()
        self.policy = policy or Policy()
        #: by aggregate id's ``.int`` (an int hashes in C, a UUID in Python)
        self._cache: dict[int, Any] = {}
        self._view_lock = threading.RLock()
        self._view = ReadModel()
        #: (directory state, (user, group) -> permission) for ``_can``
        self._permission_memo: tuple[
            DirectoryState | None, dict[tuple[int, int], Permission | None]
        ] = (None, {})
        self._log_end_probe = self._make_log_end_probe()
        # The newest notifications the read model applied, in log order: every
        # notification with an id in (_log_tail_from, view.position] is here, so
        # sealing (R31) digests them without reading back what was just written.
        self._log_tail: list[Notification] = []
        self._log_tail_from = 0
        # Deployed mode (issue 5): queries answer from persisted views that a
        # projection runner keeps (``views=`` or the ESMC_VIEWS setting).
        self._own_views = False
        views_setting = self.env.get("ESMC_VIEWS") if views is None else None
        if views_setting:
            views = open_view_store(views_setting, dict(self.env))
            self._own_views = True
        self.views: ViewStore | None = views
        self._views_model = (
            ViewsReadModel(views, self) if views is not None else None
        )
        self._ensure_directory()

    def _open_store(self, env: Mapping[str, str] | None) -> None:
        """Open the store, surviving other processes creating its tables at once.

        eventsourcing creates the PostgreSQL table and its composite type with
        ``IF NOT EXISTS``, which PostgreSQL does not make safe against a
        concurrent creator ("duplicate key … pg_type", "tuple concurrently
        updated"). The loser simply opens again: by then the tables exist.
        """
        for attempt in range(5):
            try:
                super().__init__(env=dict(env) if env is not None else None)
                return
            except PersistenceError as e:
                text = str(e)
                racing = "already exists" in text or "concurrently" in text
                if not racing or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    # -- eventsourcing hooks -------------------------------------------------

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        """eventsourcing's settings, with our lean SQLite writer unless told otherwise."""
        environment = super().construct_env(name, env)
        module = environment.get("PERSISTENCE_MODULE") or ""
        if module.endswith("sqlite") and not environment.get("APPLICATION_RECORDER_TOPIC"):
            environment["APPLICATION_RECORDER_TOPIC"] = FAST_SQLITE_RECORDER
        return environment

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        return EventMapper(cipher=self.factory.cipher(), compressor=self.factory.compressor())

    # -- the installation -------------------------------------------------------

    def _ensure_directory(self) -> None:
        def decide() -> Decision[None]:
            return None, directory.initialise(
                self._directory(),
                now=self._now(),
                console_token=secrets.token_hex(16),
                all_group=ALL_GROUP_ID,
                administrator=ADMINISTRATOR_ID,
            )

        self._execute(decide)

    @property
    def administrator(self) -> UserId:
        d = self._directory()
        assert d.administrator is not None
        return d.administrator

    @property
    def all_group(self) -> GroupId:
        d = self._directory()
        assert d.all_group is not None
        return d.all_group

    @property
    def console_token(self) -> str:
        return self._directory().console_token

    # -- plumbing ---------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.adapters.clock.now()
        if now.tzinfo is UTC:
            return now  # already as wanted: no copy (and one isoformat per time)
        if now.tzinfo is None:
            raise AdapterUnavailable("the clock returned a naive datetime; it must be UTC-aware")
        return now.astimezone(UTC)

    def _load(
        self,
        aggregate_id: uuid.UUID,
        initial: Callable[[], S],
        evolve: Callable[[S, DomainEvent], S],
    ) -> S:
        """An aggregate's state, current as of the read model's position.

        Every command catches the read model up with the log first, and the
        read model folds directory, pools, licenses, tags, filters, accounts,
        computers and tasks with the domain's own ``evolve``: those states are
        read from it, with no query and no second fold. Other aggregates (the
        seals) live in a cache that every applied event keeps current; a miss
        folds the aggregate's events from the store. An aggregate the log has
        never shown starts from its initial state without a query: a racing
        writer makes our save conflict, and the retry catches up.
        """
        view = self._view
        state = view.states.get(aggregate_id.int)
        if state is not None:
            # The read model folds this aggregate with the same evolve, in log
            # order, up to its position: that is the state to decide on.
            return state  # type: ignore[no-any-return]
        state = self._cache.get(aggregate_id.int)
        if state is not None:
            return state  # type: ignore[no-any-return]
        if aggregate_id.int not in view.seen:
            # Never in the log as of the last catch-up: nothing to select. A
            # racing writer makes our save conflict, and the retry catches up.
            return initial()
        state = initial()
        for event in self.events.get(aggregate_id):
            state = evolve(state, event)  # type: ignore[arg-type]
        with self._view_lock:
            cached = self._cache.get(aggregate_id.int)
            if cached is None or cached.version < state.version:  # type: ignore[attr-defined]
                if len(self._cache) >= self.cache_size:
                    self._cache.clear()
                self._cache[aggregate_id.int] = state
        return state

    def _cache_apply(self, event: DomainEvent) -> None:
        """Keep a cached aggregate state in step with an event the view applies."""
        key = event.originator_id.int
        cached = self._cache.get(key)
        if cached is None:
            return
        if event.originator_version == cached.version + 1:
            self._cache[key] = EVOLVE[type(event)](cached, event)
        elif event.originator_version > cached.version:
            del self._cache[key]

    def _directory(self) -> DirectoryState:
        return self._load(DIRECTORY_ID, directory.initial, directory.evolve)

    def _pool(self, pool_id: PoolId) -> PoolState:
        return self._load(pool_id, lambda: pool.initial(pool_id), pool.evolve)

    def _license(self, public_id: PublicId) -> LicenseState:
        return self._load(
            license_aggregate_id(public_id), lambda: license.initial(public_id), license.evolve
        )

    def _computer(self, computer_id: ComputerId) -> computer.ComputerState:
        return self._load(computer_id, lambda: computer.initial(computer_id), computer.evolve)

    def _tags(self) -> tags.TagsState:
        return self._load(TAGS_ID, tags.initial, tags.evolve)

    def _execute(self, decide: Callable[[], Decision[R]]) -> R:
        """Decide and save; on a lost race decide again from fresh state."""
        for attempt in range(self.max_attempts):
            self._catch_up()
            result, new_events = decide()
            if not new_events:
                return result
            try:
                self._save_events(new_events)
            except RecordConflictError:
                with self._view_lock:
                    for event in new_events:
                        self._cache.pop(event.originator_id.int, None)
                # a little random backoff, so that many racing writers of one
                # aggregate (seats of one license) do not keep colliding
                time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 8)))
                continue
            return result
        raise ConcurrencyConflict(
            f"the command lost {self.max_attempts} races with concurrent commands on the "
            "same objects; try again"
        )

    def _save_events(self, new_events: list[DomainEvent]) -> list[Recording[uuid.UUID]]:
        recorder = self.recorder
        if isinstance(recorder, FastSQLiteApplicationRecorder) and recorder.lean:
            recordings = self._record_rows(recorder, new_events)
        else:
            # Bypass Application.save's per-object Protocol checks (see performance notes).
            processing = ProcessingEvent[uuid.UUID]()
            processing.events.extend(new_events)
            recordings = self._record(processing)
        self._catch_up(recordings, getattr(new_events, "folded", None))
        self._after_save(recordings)
        return recordings

    def _record_rows(
        self, recorder: FastSQLiteApplicationRecorder, new_events: list[DomainEvent]
    ) -> list[Recording[uuid.UUID]]:
        """What ``Application._record`` does, encoding straight into the insert's
        parameters (no ``StoredEvent`` per event; see adapters/sqlite_recorder.py)."""
        to_row = self.mapper.to_row  # type: ignore[attr-defined]
        rows = [to_row(e) for e in new_events]
        params: list[Any] = []
        for e, (topic, state) in zip(new_events, rows, strict=True):
            params += (e.originator_id.hex, e.originator_version, topic, state)
        ids = recorder.insert_rows(params)
        return [
            _recording(e, _notification(e.originator_id, e.originator_version, topic, state, i))
            for e, (topic, state), i in zip(new_events, rows, ids, strict=True)
        ]

    def _after_save(self, recordings: list[Recording[uuid.UUID]]) -> None:
        """A hook run after every save (the history area seals here, R31)."""

    def _catch_up(
        self,
        recordings: list[Recording[uuid.UUID]] | None = None,
        folded: Evolved | None = None,
    ) -> ReadModel:
        """Bring the read model (and the aggregate cache) up to the end of the log."""
        with self._view_lock:
            view = self._view
            if recordings and recordings[0].notification.id == view.position + 1:
                tail, apply, cache = self._log_tail, view.apply, self._cache
                for r in recordings:
                    event: DomainEvent = r.domain_event  # type: ignore[assignment]
                    n = r.notification
                    apply(n.id, event, folded)
                    if event.originator_id.int in cache:
                        self._cache_apply(event)
                    tail.append(n)
                return view
            if self._log_end_probe is not None:
                end = self._log_end_probe()
                if end is not None and end <= view.position:
                    return view  # nothing new: skip the recorder's full select
            self._fold_log(view, stop=None, cache=True)
            return view

    def _make_log_end_probe(self) -> Callable[[], int | None] | None:
        """A cheap "where does the log end?" for the catch-up before every command.

        eventsourcing's SQLite recorder spends most of a small select on its
        connection pool and transaction handling. For a SQLite file, one
        read-only connection per thread asks ``MAX(rowid)`` of the events
        table directly (SQLite commits writers one at a time, so rowids become
        visible in order); when nothing is new, the recorder is not asked at
        all. Other stores answer through the recorder as before.
        """
        recorder = self.recorder
        if isinstance(recorder, FastSQLiteApplicationRecorder):
            # PRAGMA data_version on its writer connection: no select while
            # nobody else has written (see adapters/sqlite_recorder.py)
            return recorder.log_end
        if (self.env.get("PERSISTENCE_MODULE") or "eventsourcing.popo").endswith("popo"):
            # late-bound: tests share one in-memory recorder between applications
            return lambda: self.recorder.max_notification_id()  # noqa: PLW0108
        dbname = self.env.get("SQLITE_DBNAME", "")
        table = getattr(recorder, "events_table_name", None)
        if not dbname or table is None or "memory" in dbname or not str(table).isidentifier():
            return None
        local = threading.local()
        statement = f"SELECT MAX(rowid) FROM {table}"
        opened: list[sqlite3.Connection] = []

        def probe() -> int | None:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = sqlite3.connect(
                    f"file:{dbname}?mode=ro", uri=True, timeout=5, check_same_thread=False
                )
                local.conn = conn
                opened.append(conn)
            row = conn.execute(statement).fetchone()
            return None if row is None else row[0]

        probe.connections = opened  # type: ignore[attr-defined]
        return probe

    def _fold_log(self, view: ReadModel, stop: int | None, cache: bool = False) -> None:
        decode = self.mapper.to_domain_event
        while True:
            page = self.recorder.select_notifications(
                start=view.position, limit=1000, stop=stop, inclusive_of_start=False
            )
            for n in page:
                event: DomainEvent = decode(n)  # type: ignore[assignment]
                view.apply(n.id, event)
                if cache:
                    self._cache_apply(event)
            if cache and page:
                self._log_tail.extend(page)
                if len(self._log_tail) > self.log_tail_limit:
                    self._drop_log_tail(len(self._log_tail) - self.log_tail_limit // 2)
            if len(page) < 1000:
                return

    def _drop_log_tail(self, count: int) -> None:
        """Forget the oldest ``count`` notifications of the log tail."""
        tail = self._log_tail
        count = min(count, len(tail))
        if count > 0:
            self._log_tail_from = tail[count - 1].id
            del tail[:count]

    def _log_tail_after(self, position: int) -> list[Notification] | None:
        """The notifications after ``position`` up to the read model's position,
        from memory, or None when the tail does not reach back to ``position``.

        Those up to ``position`` are dropped from the tail (they are sealed).
        """
        with self._view_lock:
            if position < self._log_tail_from:
                return None
            tail = self._log_tail
            self._drop_log_tail(bisect.bisect_right(tail, position, key=_notification_id))
            return list(tail)

    def _model(self, as_of: datetime | int | None) -> ReadModel:
        if as_of is None:
            if self._views_model is not None:
                with self._view_lock:
                    self._views_model.refresh()
                return self._views_model
            return self._catch_up()
        if isinstance(as_of, bool) or not isinstance(as_of, (datetime, int)):
            raise InvalidInput("as_of must be a timezone-aware datetime or a log position")
        past = ReadModel()
        if isinstance(as_of, int):
            if as_of < 0:
                raise InvalidInput("a log position is a whole number ≥ 0")
            if as_of > 0:
                self._fold_log(past, stop=as_of)
            return past
        if as_of.tzinfo is None:
            raise InvalidInput("as_of must be timezone-aware (UTC)")
        decode = self.mapper.to_domain_event
        start = 0
        while True:
            page = self.recorder.select_notifications(
                start=start, limit=1000, inclusive_of_start=False
            )
            for n in page:
                ev: DomainEvent = decode(n)  # type: ignore[assignment]
                if ev.timestamp <= as_of:
                    past.apply(n.id, ev)
                start = n.id
            if len(page) < 1000:
                return past

    def _actor(self, actor: object, d: DirectoryState | None = None) -> UserId:
        uid = actor if isinstance(actor, UserId) else UserId(actor)
        d = d or self._directory()
        if uid not in d.users:
            raise NotFound("user", uid)
        return uid

    def _can(self, d: DirectoryState, uid: UserId, group: GroupId, needed: Permission) -> bool:
        """``d.can(uid, group, needed)``, remembering each (user, group) answer per
        directory state: states are immutable, so an answer holds for that very
        state (the memo is replaced along with it, never cleared under a reader).
        """
        owner, memo = self._permission_memo
        if owner is not d:
            memo = {}
            self._permission_memo = (d, memo)
        key = (uid.int, group.int)  # ints hash in C, UUIDs in Python
        p = memo.get(key, _UNKNOWN)
        if p is _UNKNOWN:
            p = memo[key] = d.permission(uid, group)
        return p is not None and p >= needed

    def _visible_pool(self, d: DirectoryState, uid: UserId, pool_id: PoolId) -> PoolState:
        p = self._pool(pool_id)
        if not p.exists or p.group is None or not self._can(d, uid, p.group, Permission.READ):
            raise NotFound("license pool", pool_id)
        return p

    def _effects_of_license_events(
        self, events: list[DomainEvent], now: datetime, actor: str
    ) -> list[DomainEvent]:
        """Events other aggregates record because of these license events.

        A hook for areas that react within the same atomic save: the computers
        area records products deactivated by a suspension (R27). The base
        records nothing.
        """
        return []

    def _ask(self, what: str, call: Callable[[], R]) -> R:
        """Call a port; anything but a deliberate refusal becomes AdapterUnavailable."""
        try:
            return call()
        except LicensingError:
            raise
        except Exception as e:  # an adapter bug or an I/O error: say which port
            log.warning("%s failed: %s", what, type(e).__name__)
            raise AdapterUnavailable(f"{what} failed ({type(e).__name__}); try again later") from e

    def user_named(self, name: str) -> UserId:
        """The id of a user by name (case-insensitive), for tools and tests."""
        uid = self._directory().user_named(name)
        if uid is None:
            raise NotFound("user", name)
        return uid

    def group_named(self, name: str) -> GroupId:
        gid = self._directory().group_named(name)
        if gid is None:
            raise NotFound("static group", name)
        return gid

    def group_name(self, group: object) -> str:
        """The name of a static group by id (for showing views' ``group``)."""
        d = self._directory()
        g = d.groups.get(GroupId(group))
        if g is None:
            raise NotFound("static group", group)
        return g.name

    @property
    def position(self) -> int:
        """The log position the read model has reached (for ``as_of``)."""
        return self._catch_up().position

    # -- deployed mode: persisted views (issue 5) ------------------------------------

    def wait_for(self, position: int | None = None, timeout: float = 10.0) -> None:
        """Block until the views have applied the log up to ``position``.

        ``None`` waits for everything this application has seen in the log
        (its own writes included). Embedded mode never waits: its queries
        catch up by themselves. Raises ``TimeoutError``.
        """
        if self.views is None:
            return
        if position is None:
            position = self.position
        self.views.wait(self.name, position, timeout=timeout)

    def close(self) -> None:
        if self._own_views and self.views is not None:
            self.views.close()
        for conn in getattr(self._log_end_probe, "connections", ()):
            conn.close()
        if isinstance(self.recorder, FastSQLiteApplicationRecorder):
            self.recorder.close()
        super().close()
