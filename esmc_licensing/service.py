"""The service core every command and query stands on.

One path for every command: validate input -> authorise against the
directory -> ask adapters (before anything is saved) -> load the aggregates
it decides on -> ``decide`` -> save all events of the command in one atomic
call -> apply them to the views. A lost race on an aggregate version is
retried from fresh state a bounded number of times.

Cost follows the work. An aggregate is loaded by id: from a bounded cache of
recent states, else from its latest snapshot (kept every
``ESMC_SNAPSHOT_EVERY`` events) and the events after it. Queries read the
indexed views (:mod:`.projections.tables`), which every save updates and
which catch up with other processes' writes (one read of the new events)
before a query answers. Nothing folds the whole log except a rebuild or a
replay "as of" a past moment, and those stream it.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from eventsourcing.application import Application
from eventsourcing.persistence import (
    Mapper,
    PersistenceError,
    RecordConflictError,
)
from eventsourcing.utils import Environment

from .adapters.field_cipher import cipher_for
from .adapters.mapper import EventMapper
from .adapters.sqlite_recorder import TOPIC as FAST_SQLITE_RECORDER
from .adapters.sqlite_recorder import FastSQLiteApplicationRecorder, refuse_foreign_database
from .aggregates import EVOLVE, decode_state, encode_state
from .domain import computer, directory, license, pool, tags
from .domain.directory import DirectoryState
from .domain.errors import (
    AdapterUnavailable,
    ConcurrencyConflict,
    InvalidInput,
    LicensingError,
    NotFound,
)
from .domain.events import DomainEvent
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
from .domain.task import TaskState
from .domain.values import Permission, Policy
from .eventlog import EventLog
from .keyring import create_private_file
from .projections.fold import entity_key
from .projections.runner import ViewUpdater, seeds_of
from .projections.tables import SQLiteViews, ViewStore, open_views
from .wiring import Adapters

log = logging.getLogger("esmc_licensing")

R = TypeVar("R")
S = TypeVar("S")

Decision = tuple[R, list[DomainEvent]]

__all__ = [
    "ADMINISTRATOR_ID",
    "ALL_GROUP_ID",
    "EVOLVE",
    "Decision",
    "FoldedEvents",
    "ServiceBase",
]


class FoldedEvents(list[DomainEvent]):
    """New events with the states their decision already folded from them.

    ``spans`` maps each aggregate (its id's ``.int``) to (the state the
    decision started from, the state its events left): after the save the
    aggregate cache takes the latter instead of folding the events again, and
    the views start from the former. ``folded`` maps id(event) to (event,
    state before, state after) for the events whose state after is small (see
    :data:`MEMO_LARGEST`), for the views to take instead of folding them again.
    Keeping every intermediate state would cost memory quadratic in a
    command's targets (a seat set per seat taken).
    """

    __slots__ = ("folded", "spans")

    def __init__(self) -> None:
        super().__init__()
        self.folded: dict[int, tuple[DomainEvent, Any, Any]] = {}
        self.spans: dict[int, tuple[Any, Any]] = {}

    def add(self, event: DomainEvent, before: Any, after: Any) -> None:
        """Append ``event``, which took its aggregate from ``before`` to ``after``."""
        key = event.originator_id.int
        span = self.spans.get(key)
        self.spans[key] = (before if span is None else span[0], after)
        if _small(after):
            self.folded[id(event)] = (event, before, after)
        self.append(event)


#: "not asked yet" in the permission memo (None is an answer: no permission)
_UNKNOWN: Any = object()

ADMINISTRATOR_ID = UserId.derive("administrator")
ALL_GROUP_ID = GroupId.derive("All")

#: events per transaction of a replay's views
REPLAY_BATCH = 50_000

#: past this many new events, the aggregate cache is dropped rather than caught up
CACHE_CATCH_UP_LIMIT = 5_000

#: the largest seat set or target map of a state kept for the views to reuse
#: (``FoldedEvents.folded``): a kept state stays in memory until the views
#: apply it, and each seat taken makes a new seat set, each target's result a
#: new target map -- a command on thousands of computers would keep thousands
#: of them, and up to ``views_lag`` events wait -- so larger states are folded
#: again by the views
MEMO_LARGEST = 256


def _small(state: Any) -> bool:
    if isinstance(state, LicenseState):
        return len(state.seats) <= MEMO_LARGEST
    if isinstance(state, TaskState):
        return len(state.targets) <= MEMO_LARGEST
    return True


def _setting(env: Mapping[str, str] | Environment, name: str, default: int, low: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {value!r}") from None
    if number < low:
        raise InvalidInput(f"{name} must be at least {low}, not {number}")
    return number


class ServiceBase(Application[uuid.UUID]):
    """The license management of one console installation, over one event store.

    ``env`` takes eventsourcing's settings (PERSISTENCE_MODULE, SQLITE_DBNAME,
    POSTGRES_*, CIPHER_*, COMPRESSOR_TOPIC) and the library's own:
    ``ESMC_CACHE_SIZE`` (aggregate states kept in memory, default 10,000),
    ``ESMC_SNAPSHOT_EVERY`` (events after which an aggregate's state is
    snapshotted, default 100), ``ESMC_VIEWS`` (where the views live:
    beside the events by default, or ``memory`` / ``sqlite:PATH``). With no
    env it keeps everything in memory. ``adapters`` defaults to in-memory
    doubles, ``policy`` to ``Policy()``.
    """

    name = "LicenseManagement"
    log_section_size = 1000
    #: how many times a command that lost a race is decided again
    max_attempts = 16
    #: new events after which a save brings the views up to date itself
    #: (otherwise the next query does, in one transaction for all of them)
    views_lag = 1000

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
        self.cache_size = _setting(self.env, "ESMC_CACHE_SIZE", 10_000, 1)
        self.snapshot_every = _setting(self.env, "ESMC_SNAPSHOT_EVERY", 100, 1)
        mapper = self.mapper
        self.event_log = EventLog(self.recorder, mapper)  # type: ignore[arg-type]
        self._own_views = views is None
        self.views: ViewStore = (
            views if views is not None else open_views(self._settings(), self.recorder)
        )
        self.views.policy = self.policy  # the thresholds alerts are raised by (R35)
        self._updater = ViewUpdater(self.event_log, self.views)
        self._lock = threading.RLock()
        #: aggregate states by id's ``.int``, least recently used first
        self._states: OrderedDict[int, Any] = OrderedDict()
        #: the log position the cached states are current with
        self._position = self.event_log.end()
        #: where the views were last seen to stand (a lower bound)
        self._views_position = 0
        #: this application's own saved events the views have not applied yet
        #: (in log order, following on from ``_views_position``)
        self._pending: list[tuple[int, DomainEvent]] = []
        #: (kind, key) -> the state of a view row just before ``_pending``
        self._pending_seeds: dict[tuple[str, str], Any] = {}
        #: the view rows ``_pending`` changes
        self._pending_touched: set[tuple[str, str]] = set()
        #: id(event) -> (event, before, after): what the decisions of ``_pending`` folded
        self._pending_folded: dict[int, tuple[DomainEvent, Any, Any]] = {}
        #: (directory state, (user, group) -> permission) for ``_can``
        self._permission_memo: tuple[
            DirectoryState | None, dict[tuple[int, int], Permission | None]
        ] = (None, {})
        # the views are brought up to date by the first query (or ``catch_up``,
        # which can report progress), not here: a store written in bulk, or whose
        # views this version rebuilds, would make opening it take a minute a
        # million events, silently
        self._refresh(views=False)
        self._ensure_directory()

    def _share_store(self, other: ServiceBase) -> None:
        """Read and write ``other``'s store from now on (tests "reopen" an in-memory
        store this way: its events live in the recorder object)."""
        self.recorder = other.recorder
        self.events = other.events
        self.event_log = EventLog(other.recorder, self.event_log.mapper)
        self._updater = ViewUpdater(self.event_log, self.views)
        self.views.drop(snapshots=True)
        with self._lock:
            self._states.clear()
            self._position = 0
            self._views_position = 0
            self._pending = []
            self._pending_seeds = {}
            self._pending_touched = set()
            self._pending_folded = {}
        self._refresh(views=False)  # as when opening: the first query catches up

    def _settings(self) -> dict[str, str]:
        """The settings as given (eventsourcing's Environment answers by several names)."""
        names = (
            "PERSISTENCE_MODULE", "SQLITE_DBNAME", "ESMC_VIEWS", "POSTGRES_HOST",
            "POSTGRES_PORT", "POSTGRES_DBNAME", "POSTGRES_USER", "POSTGRES_PASSWORD",
            "POSTGRES_SCHEMA", "POSTGRES_CONNECT_TIMEOUT",
        )
        return {n: str(v) for n in names if (v := self.env.get(n)) is not None}

    def _open_store(self, env: Mapping[str, str] | None) -> None:
        """Open the store, surviving other processes creating its tables at once.

        eventsourcing creates the PostgreSQL table and its composite type with
        ``IF NOT EXISTS``, which PostgreSQL does not make safe against a
        concurrent creator ("duplicate key … pg_type", "tuple concurrently
        updated"). The loser simply opens again: by then the tables exist.
        """
        settings = self.construct_env(self.name, dict(env) if env is not None else None)
        if (settings.get("PERSISTENCE_MODULE") or "").endswith("sqlite"):
            name = settings.get("SQLITE_DBNAME") or ""
            # before eventsourcing connects: it would switch the file to WAL
            # and add its table to another application's database
            refuse_foreign_database(name)
            if name and ":memory:" not in name and "mode=memory" not in name:
                create_private_file(name.removeprefix("file:").split("?")[0])
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
        return EventMapper(
            cipher=self.factory.cipher(),
            compressor=self.factory.compressor(),
            secrets=cipher_for(self.env),
        )

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
        """An aggregate's current state, by id.

        From the cache if it is there (kept current by every save and
        catch-up), else from its latest snapshot and the events recorded
        after it; a snapshot is written when more than ``snapshot_every``
        events had to be folded.
        """
        with self._lock:
            state = self._states.get(aggregate_id.int)
            if state is not None:
                self._states.move_to_end(aggregate_id.int)
                return state  # type: ignore[no-any-return]
        loaded: S = self._load_many([(aggregate_id, initial, evolve)])[0]
        return loaded

    def _prefetch(
        self, wanted: Sequence[tuple[uuid.UUID, Callable[[], Any], Callable[[Any, Any], Any]]]
    ) -> None:
        """Bring many aggregates into the cache at once (a sync of thousands of
        licenses): a few queries instead of two per aggregate. At most the
        cache's size are loaded."""
        with self._lock:
            states = self._states
            missing = []
            for w in wanted:
                if w[0].int in states:
                    # kept as recently used: loading the missing ones must not
                    # push out the wanted ones the cache already held
                    states.move_to_end(w[0].int)
                else:
                    missing.append(w)
        if missing:
            self._load_many(missing[: self.cache_size])

    def _load_many(
        self, wanted: Sequence[tuple[uuid.UUID, Callable[[], Any], Callable[[Any, Any], Any]]]
    ) -> list[Any]:
        """Aggregates' states from their snapshots and the events after them, in
        the order asked; each is cached, and snapshotted when more than
        ``snapshot_every`` events had to be folded."""
        if len(wanted) == 1:
            # one aggregate (a command's cache miss): most are new or short (a
            # license being added, a computer with a few check-ins), and those
            # are folded from their first events without asking for a snapshot;
            # past ``probe`` events, the snapshot and the events after it
            aggregate_id, initial, evolve = wanted[0]
            probe = min(self.snapshot_every, 32)
            rows = self.event_log.rows_of(aggregate_id, probe + 1)
            if len(rows) <= probe:
                state = initial()
                decode = self.event_log.decode
                for row in rows:
                    state = evolve(state, decode(row))
                self._remember(aggregate_id.int, state)
                return [state]
        ids = [w[0] for w in wanted]
        snapshots = self.views.snapshots(ids)
        states = []
        for aggregate_id, initial, _ in wanted:
            state = initial()
            snapshot = snapshots.get(aggregate_id)
            if snapshot is not None:
                state = decode_state(
                    type(state), snapshot[1], self.event_log.mapper.secrets, aggregate_id
                )
            states.append(state)
        events = self.event_log.events_of_many(ids, [s.version for s in states])
        out = []
        for (aggregate_id, _, evolve), start in zip(wanted, states, strict=True):
            state = start
            folded = events[aggregate_id]
            for event in folded:
                state = evolve(state, event)
            if len(folded) >= self.snapshot_every:
                self._put_snapshot(aggregate_id, state)
            self._remember(aggregate_id.int, state)
            out.append(state)
        return out

    def _remember(self, key: int, state: Any) -> None:
        with self._lock:
            cached = self._states.get(key)
            if cached is not None and cached.version >= state.version:
                return
            self._states[key] = state
            self._states.move_to_end(key)
            while len(self._states) > self.cache_size:
                self._states.popitem(last=False)

    def _cache_apply(self, event: DomainEvent) -> None:
        """Keep a cached state in step with an event recorded after it (under the lock)."""
        key = event.originator_id.int
        cached = self._states.get(key)
        if cached is None:
            return
        version = event.originator_version
        if version == cached.version + 1:
            self._states[key] = EVOLVE[type(event)](cached, event)
        elif version > cached.version:
            del self._states[key]

    def _cache_advance(self, spans: Mapping[int, tuple[Any, Any]]) -> None:
        """Bring cached states to what a saved decision left them (under the lock):
        a state the decision started from -- its version, since states are
        values -- becomes the one its events left; any other is dropped."""
        states = self._states
        for key, (start, end) in spans.items():
            cached = states.get(key)
            if cached is None or cached.version >= end.version:
                continue
            if cached.version == start.version:
                states[key] = end
            else:
                del states[key]

    def _refresh(self, *, views: bool = True) -> None:
        """Catch up with what was recorded since we last looked (by other
        processes, and for the views by this one too): the cached states and,
        with ``views``, the views.

        A probe of the log's end when nothing is new; otherwise one read of
        the new events for the cache and one views transaction.
        """
        end = self.event_log.end()
        with self._lock:
            if end > self._position:
                if self._states and end - self._position <= CACHE_CATCH_UP_LIMIT:
                    for _, event in self.event_log.read(self._position, end):
                        self._cache_apply(event)
                else:
                    self._states.clear()
                self._position = max(self._position, end)
        if views:
            # the views' own position, not a remembered one: another process may
            # have emptied them (a rebuild) since we last looked
            current = self.views.position()
            self._views_position = current
            if end > current:
                self._catch_up_views(end)

    def _catch_up_views(
        self, end: int, progress: Callable[[int], None] | None = None
    ) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            seeds, self._pending_seeds = self._pending_seeds, {}
            folded, self._pending_folded = self._pending_folded, {}
            self._pending_touched = set()
        reached = self._updater.apply_known(pending, seeds, folded) if pending else None
        if reached is None or reached < end:
            reached = self._updater.catch_up(stop=end, progress=progress)
        self._views_position = reached

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Bring the views up to the log's end now, reporting ``progress(position,
        end)`` after each batch; returns the views' position.

        Any query does this by itself; a caller that knows the views may be far
        behind (a store written in bulk, or views dropped by an upgrade: a
        million events take about a minute) calls it first to show progress.
        """
        end = self.event_log.end()
        self._refresh(views=False)
        current = self.views.position()
        if current < end:
            self._catch_up_views(end, None if progress is None else lambda p: progress(p, end))
        else:
            self._views_position = current
        return self._views_position

    def _directory(self) -> DirectoryState:
        return self._load(DIRECTORY_ID, directory.initial, directory.evolve)

    def _pool(self, pool_id: PoolId) -> PoolState:
        return self._load(pool_id, lambda: pool.initial(pool_id), pool.evolve)

    def _license(self, public_id: PublicId) -> LicenseState:
        return self._load(
            license_aggregate_id(public_id), lambda: license.initial(public_id), license.evolve
        )

    def _in_parts(
        self, wanted: Sequence[tuple[uuid.UUID, Callable[[], Any], Callable[[Any, Any], Any]]]
    ) -> Iterator[Any]:
        """Each aggregate's state, in order, loaded half the aggregate cache at a
        time in a few queries a part: a decision on every license of a pool or a
        company, or every computer of a group (thousands), loads them neither
        one by one nor more than the cache holds at once."""
        part = max(1, self.cache_size // 2)
        for i in range(0, len(wanted), part):
            chunk = wanted[i : i + part]
            self._prefetch(chunk)
            for aggregate_id, initial, evolve in chunk:
                yield self._load(aggregate_id, initial, evolve)

    def _licenses(self, public_ids: Sequence[PublicId]) -> Iterator[LicenseState]:
        return self._in_parts([
            (license_aggregate_id(p), partial(license.initial, p), license.evolve)
            for p in public_ids
        ])

    def _computer_states(
        self, computer_ids: Sequence[ComputerId]
    ) -> Iterator[computer.ComputerState]:
        return self._in_parts(
            [(c, partial(computer.initial, c), computer.evolve) for c in computer_ids]
        )

    def _computer(self, computer_id: ComputerId) -> computer.ComputerState:
        return self._load(computer_id, lambda: computer.initial(computer_id), computer.evolve)

    def _tags(self) -> tags.TagsState:
        return self._load(TAGS_ID, tags.initial, tags.evolve)

    def _execute(self, decide: Callable[[], Decision[R]], *, dry_run: bool = False) -> R:
        """Decide and save; on a lost race decide again from fresh state.

        ``dry_run``: decide (every check and refusal of the command) and return
        what it would answer, recording nothing -- a preview is the command's
        own decision, not a copy of its rules.
        """
        if not isinstance(dry_run, bool):
            raise InvalidInput(f"dry_run must be True or False, not {dry_run!r}")
        for attempt in range(self.max_attempts):
            self._refresh(views=False)
            result, new_events = decide()
            if not new_events or dry_run:
                return result
            try:
                self._save_events(new_events)
            except RecordConflictError:
                with self._lock:
                    for event in new_events:
                        self._states.pop(event.originator_id.int, None)
                # a little random backoff, so that many racing writers of one
                # aggregate (seats of one license) do not keep colliding
                time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 8)))
                continue
            return result
        raise ConcurrencyConflict(
            f"the command lost {self.max_attempts} races with concurrent commands on the "
            "same objects; try again"
        )

    def _save_events(self, new_events: list[DomainEvent]) -> list[int]:
        """Record a command's events in one atomic call and bring the cached
        states up to them; returns their positions.

        The views follow when a query (or a command that reads them) next
        asks, in one transaction for everything new since -- or here, once
        they are ``views_lag`` events behind -- so a command pays for its
        own events only and many commands share one views transaction.
        """
        positions = self.event_log.append(new_events)
        folded = getattr(new_events, "folded", None)
        spans = getattr(new_events, "spans", None)
        with self._lock:
            if spans is not None:
                self._cache_advance(spans)
            else:
                for event in new_events:
                    self._cache_apply(event)
            if positions and positions[0] == self._position + 1:
                self._position = positions[-1]
            # kept for the views while they follow on without a gap: they are
            # then applied from memory instead of read back and decoded
            pending = self._pending
            follows = pending[-1][0] if pending else self._views_position
            if positions and positions[0] == follows + 1:
                pending.extend(zip(positions, new_events, strict=True))
                # the states the decision started from are the views' rows of
                # those entities, when this save is the first of the waiting
                # ones to change them: no read back
                seeds, touched = self._pending_seeds, self._pending_touched
                for kind, key, state in seeds_of(new_events, spans):
                    if (kind, key) not in touched:
                        seeds[(kind, key)] = state
                touched.update(k for e in new_events if (k := entity_key(e)) is not None)
                if folded:
                    self._pending_folded.update(folded)
            else:
                pending.clear()
                self._pending_seeds.clear()
                self._pending_touched.clear()
                self._pending_folded.clear()
        self._snapshot_grown(new_events, spans)
        if positions and positions[-1] - self._views_position >= self.views_lag:
            self._catch_up_views(positions[-1])
        return positions

    def _snapshot_grown(
        self, events: Sequence[DomainEvent], spans: Mapping[int, tuple[Any, Any]] | None
    ) -> None:
        """Snapshot the aggregates one save grew by ``snapshot_every`` events or
        more (a task on thousands of computers, the license it took seats of, a
        pool 20,000 licenses joined): the cache may drop them soon, and loading
        them would then fold every one of those events, as no load has
        snapshotted them yet. The state is the decision's last (``spans``), else
        the cached one the events reached."""
        grown: dict[int, list[int]] = {}
        for e in events:
            seen = grown.setdefault(e.originator_id.int, [0, 0])
            seen[0] += 1
            seen[1] = e.originator_version
        for key, (count, version) in grown.items():
            if count < self.snapshot_every:
                continue
            if spans is not None and key in spans:
                state = spans[key][1]
            else:
                with self._lock:
                    state = self._states.get(key)
            if state is not None and state.version == version:
                self._put_snapshot(uuid.UUID(int=key), state)

    def _put_snapshot(self, aggregate_id: uuid.UUID, state: Any) -> None:
        try:
            self.views.put_snapshot(
                aggregate_id,
                state.version,
                encode_state(state, self.event_log.mapper.secrets, aggregate_id).decode(),
            )
        except Exception as e:  # a snapshot is an optimisation: never fail on it
            log.warning("could not snapshot %s: %s", aggregate_id, e)

    @contextmanager
    def _reading(
        self, as_of: datetime | int | None, targets: Callable[[], Iterable[str]] | None = None
    ) -> Iterator[tuple[ViewStore, DirectoryState, date]]:
        """What a query reads: the views, the directory and today's date.

        ``as_of`` (a datetime or a log position) replays the log up to then
        into views of their own, dropped afterwards (R30); with ``targets``
        (the audit targets the query is about) only those targets' events
        and the directory's are replayed, not the whole log.
        """
        if as_of is None:
            self._refresh()
            yield self.views, self._directory(), self._now().date()
            return
        views, path, d, today = self._replay(as_of, targets)
        try:
            yield views, d, today
        finally:
            views.close()
            if path != ":memory:":
                Path(path).unlink(missing_ok=True)

    def _replay(
        self, as_of: datetime | int, targets: Callable[[], Iterable[str]] | None = None
    ) -> tuple[ViewStore, str, DirectoryState, date]:
        """The views and directory as they were at ``as_of``, through the views'
        one fold into a fresh store.

        With ``targets``, only the events the audit index lists for them and
        for the directory are replayed (what one license's view needs);
        otherwise the whole log is streamed, into a temporary file for file
        and server stores so memory stays bounded however long the log.
        """
        if isinstance(as_of, bool) or not isinstance(as_of, (datetime, int)):
            raise InvalidInput("as_of must be a timezone-aware datetime or a log position")
        if isinstance(as_of, int) and as_of < 0:
            raise InvalidInput("a log position is a whole number ≥ 0")
        if isinstance(as_of, datetime) and as_of.tzinfo is None:
            raise InvalidInput("as_of must be timezone-aware (UTC)")
        path = ":memory:"
        if targets is None and not (
            isinstance(self.views, SQLiteViews) and self.views.path == ":memory:"
        ):
            fd, path = tempfile.mkstemp(prefix="esmc-replay-", suffix=".db")
            os.close(fd)
        stop = as_of if isinstance(as_of, int) else None
        events: Iterable[tuple[int, DomainEvent]]
        if targets is None:
            events = self.event_log.read(0, stop)
        else:
            self._refresh()
            positions: set[int] = set(self.views.history_positions("directory"))
            for target in targets():
                positions.update(self.views.history_positions(target))
            events = self.event_log.at(sorted(p for p in positions if stop is None or p <= stop))
        views = SQLiteViews(path)
        d = directory.initial()

        def kept() -> Iterator[tuple[int, DomainEvent]]:
            nonlocal d
            for position, event in events:
                if isinstance(as_of, datetime) and event.timestamp > as_of:
                    continue
                if event.originator_id == DIRECTORY_ID:
                    d = directory.evolve(d, event)
                yield position, event

        try:
            ViewUpdater(self.event_log, views).apply_stream(kept(), REPLAY_BATCH)
        except BaseException:
            views.close()
            if path != ":memory:":
                Path(path).unlink(missing_ok=True)
            raise
        if isinstance(as_of, datetime):
            today = as_of.astimezone(UTC).date()
        else:
            today = self._time_at(as_of).date()
        return views, path, d, today

    def _time_at(self, position: int) -> datetime:
        """When the event at a log position was recorded (the last one's, past the
        end; the clock's now before the first): "today" of a replay to a position."""
        rows = self.event_log.rows(position - 1, position, 1) if position > 0 else []
        if not rows and position > 0:
            end = self.event_log.end()
            rows = self.event_log.rows(end - 1, end, 1) if 0 < end < position else []
        if rows:
            return self.event_log.decode(rows[0]).timestamp
        return self._now()

    def _actor(self, actor: object, d: DirectoryState | None = None) -> UserId:
        uid = actor if isinstance(actor, UserId) else UserId(actor)
        if uid in (d or self._directory()).users:
            return uid
        if d is None:  # perhaps created by another process since we last looked
            self._refresh()
            if uid in self._directory().users:
                return uid
        raise NotFound("user", uid)

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
        self._refresh()
        uid = self._directory().user_named(name)
        if uid is None:
            raise NotFound("user", name)
        return uid

    def group_named(self, name: str) -> GroupId:
        """The id of a static group by name (case-insensitive)."""
        self._refresh()
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
        """The position of the last event recorded in the store (for ``as_of``)."""
        self._refresh()
        return self._position

    def wait_for(self, position: int | None = None, timeout: float = 10.0) -> None:
        """Block until the views have applied the log up to ``position`` (None: its end).

        An application keeps its views current by itself, so this returns as
        soon as they have caught up; it waits only for views that a separate
        runner keeps. Raises ``TimeoutError``.
        """
        deadline = time.monotonic() + timeout
        target = self.event_log.end() if position is None else position
        while True:
            self._refresh()
            if self.views.position() >= target:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the views did not reach position {target} in {timeout} s")
            time.sleep(0.05)

    def close(self) -> None:
        if self._own_views:
            self.views.close()
        recorder = self.recorder
        if isinstance(recorder, FastSQLiteApplicationRecorder):
            recorder.close()
        super().close()
