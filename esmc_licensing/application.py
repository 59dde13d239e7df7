"""LicenseManagement: the application service.

Every command follows one path: validate input -> authorise against the
directory -> ask adapters (before anything is saved) -> load aggregates ->
``decide`` -> save all events of the command in one atomic call. A lost race
on an aggregate version is retried from fresh state a bounded number of
times. Queries answer from the read model, caught up with the log first, so a
query after a command always sees it (and sees other processes' writes too).
"""

from __future__ import annotations

import logging
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import (
    Mapper,
    RecordConflictError,
    Recording,
)

from .adapters.mapper import EventMapper
from .domain import directory, license, pool, saved_filters, tags
from .domain.directory import DirectoryState
from .domain.errors import (
    AdapterUnavailable,
    ConcurrencyConflict,
    ConfirmationRequired,
    InvalidInput,
    InvalidLicenseFile,
    LicensingError,
    NotFound,
    PermissionDenied,
    UnsupportedProduct,
)
from .domain.events import DomainEvent, Emitter, user_actor
from .domain.filters import LicenseFilter
from .domain.ids import (
    DIRECTORY_ID,
    TAGS_ID,
    GroupId,
    LicenseKey,
    PoolId,
    PublicId,
    UserId,
    filters_aggregate_id,
    license_aggregate_id,
    pool_id_for,
)
from .domain.license import LicenseState
from .domain.pool import PoolState
from .domain.values import LicenseDetails, Permission, Policy, Source
from .projections.memory import (
    DIRECTORY_EVENTS,
    FILTER_EVENTS,
    LICENSE_EVENTS,
    POOL_EVENTS,
    TAG_EVENTS,
    ReadModel,
    license_target,
    pool_target,
)
from .projections.views import HistoryEntry, LicenseView, PoolView
from .wiring import Adapters

log = logging.getLogger("esmc_licensing")

R = TypeVar("R")
S = TypeVar("S")

Decision = tuple[R, list[DomainEvent]]

EVOLVE: dict[type[DomainEvent], Callable[[Any, Any], Any]] = {
    **dict.fromkeys(DIRECTORY_EVENTS, directory.evolve),
    **dict.fromkeys(POOL_EVENTS, pool.evolve),
    **dict.fromkeys(LICENSE_EVENTS, license.evolve),
    **dict.fromkeys(TAG_EVENTS, tags.evolve),
    **dict.fromkeys(FILTER_EVENTS, saved_filters.evolve),
}

ADMINISTRATOR_ID = UserId.derive("administrator")
ALL_GROUP_ID = GroupId.derive("All")


class LicenseManagement(Application[uuid.UUID]):
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

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        adapters: Adapters | None = None,
        policy: Policy | None = None,
    ) -> None:
        super().__init__(env=dict(env) if env is not None else None)
        self.adapters = adapters or Adapters()
        self.policy = policy or Policy()
        self._cache: dict[uuid.UUID, Any] = {}
        self._view_lock = threading.RLock()
        self._view = ReadModel()
        self._ensure_directory()

    # -- eventsourcing hooks -------------------------------------------------

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        return EventMapper(
            cipher=self.factory.cipher(), compressor=self.factory.compressor()
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

        The cache is kept current by every event the read model applies (own
        saves and catch-up alike), so after a command's catch-up a cached state
        needs no query. A miss folds the aggregate's events from the store.
        """
        state = self._cache.get(aggregate_id)
        if state is not None:
            return state  # type: ignore[no-any-return]
        state = initial()
        if aggregate_id not in self._view.seen:
            # Never in the log as of the last catch-up: nothing to select. A
            # racing writer makes our save conflict, and the retry catches up.
            return state
        for event in self.events.get(aggregate_id):
            state = evolve(state, event)  # type: ignore[arg-type]
        with self._view_lock:
            cached = self._cache.get(aggregate_id)
            if cached is None or cached.version < state.version:  # type: ignore[attr-defined]
                if len(self._cache) >= self.cache_size:
                    self._cache.clear()
                self._cache[aggregate_id] = state
        return state

    def _cache_apply(self, event: DomainEvent) -> None:
        """Keep a cached aggregate state in step with an event the view applies."""
        cached = self._cache.get(event.originator_id)
        if cached is None:
            return
        if event.originator_version == cached.version + 1:
            self._cache[event.originator_id] = EVOLVE[type(event)](cached, event)
        elif event.originator_version > cached.version:
            del self._cache[event.originator_id]

    def _directory(self) -> DirectoryState:
        return self._load(DIRECTORY_ID, directory.initial, directory.evolve)

    def _pool(self, pool_id: PoolId) -> PoolState:
        return self._load(pool_id, lambda: pool.initial(pool_id), pool.evolve)

    def _license(self, public_id: PublicId) -> LicenseState:
        return self._load(
            license_aggregate_id(public_id), lambda: license.initial(public_id), license.evolve
        )

    def _tags(self) -> tags.TagsState:
        return self._load(TAGS_ID, tags.initial, tags.evolve)

    def _execute(self, decide: Callable[[], Decision[R]]) -> R:
        """Decide and save; on a lost race decide again from fresh state."""
        for _ in range(self.max_attempts):
            self._catch_up()
            result, new_events = decide()
            if not new_events:
                return result
            try:
                self._save_events(new_events)
            except RecordConflictError:
                with self._view_lock:
                    for event in new_events:
                        self._cache.pop(event.originator_id, None)
                continue
            return result
        raise ConcurrencyConflict(
            f"the command lost {self.max_attempts} races with concurrent commands on the "
            "same objects; try again"
        )

    def _save_events(self, new_events: list[DomainEvent]) -> list[Recording[uuid.UUID]]:
        # Bypass Application.save's per-object Protocol checks (see performance notes).
        processing = ProcessingEvent[uuid.UUID]()
        processing.events.extend(new_events)
        recordings = self._record(processing)
        self._catch_up(recordings)
        return recordings

    def _catch_up(self, recordings: list[Recording[uuid.UUID]] | None = None) -> ReadModel:
        """Bring the read model (and the aggregate cache) up to the end of the log."""
        with self._view_lock:
            view = self._view
            if recordings and recordings[0].notification.id == view.position + 1:
                for r in recordings:
                    event: DomainEvent = r.domain_event  # type: ignore[assignment]
                    view.apply(r.notification.id, event)
                    self._cache_apply(event)
                return view
            self._fold_log(view, stop=None, cache=True)
            return view

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
            if len(page) < 1000:
                return

    def _model(self, as_of: datetime | int | None) -> ReadModel:
        if as_of is None:
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

    def _ask(self, what: str, call: Callable[[], R]) -> R:
        """Call a port; anything but a deliberate refusal becomes AdapterUnavailable."""
        try:
            return call()
        except LicensingError:
            raise
        except Exception as e:  # an adapter bug or an I/O error: say which port
            log.warning("%s failed: %s", what, type(e).__name__)
            raise AdapterUnavailable(f"{what} failed ({type(e).__name__}); try again later") from e

    # -- directory (R10, R11) ---------------------------------------------------

    def create_group(self, actor: object, name: str, parent: object = None) -> GroupId:
        """A static group under ``parent`` (None: under All)."""
        uid = self._actor(actor)
        parent_id = None if parent is None else GroupId(parent)

        def decide() -> Decision[GroupId]:
            return directory.create_group(self._directory(), uid, name, parent_id, self._now())

        return self._execute(decide)

    def create_user(self, actor: object, name: str, home_group: object) -> UserId:
        uid = self._actor(actor)
        home = GroupId(home_group)

        def decide() -> Decision[UserId]:
            return directory.create_user(self._directory(), uid, name, home, self._now())

        return self._execute(decide)

    def grant(self, actor: object, user: object, group: object, permission: Permission) -> None:
        uid = self._actor(actor)
        target = UserId(user)
        gid = GroupId(group)

        def decide() -> Decision[None]:
            return None, directory.grant(
                self._directory(), uid, target, gid, permission, self._now()
            )

        self._execute(decide)

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

    # -- intake (R12, R15) ------------------------------------------------------

    def add_license_key(self, actor: object, key: str) -> PublicId:
        """Add a license by its key (R15); returns its Public ID.

        The key's shape is checked before anything is asked; the activation
        server is asked before anything is recorded. A license already present
        records nothing.
        """
        license_key = LicenseKey(key)
        uid = self._actor(actor)
        directory.require_administrator(self._directory(), uid, "adding licenses")
        server = self.adapters.activation_server
        details = self._ask("the activation server", lambda: server.verify_key(license_key))
        return self._intake(uid, details, Source.LICENSE_KEY, license_key)

    def add_offline_license_file(self, actor: object, content: bytes) -> PublicId:
        """Add a license from a signed offline license file (R16).

        The file must verify with the vendor's public key, be generated for
        this installation's ``console_token``, not be issued in the future,
        not be expired and not be a subscription; otherwise
        ``InvalidLicenseFile`` names the check that failed.
        """
        uid = self._actor(actor)
        directory.require_administrator(self._directory(), uid, "adding licenses")
        if not isinstance(content, (bytes, bytearray, memoryview)):
            raise InvalidLicenseFile("offline license file refused: the content must be bytes")
        verifier = self.adapters.offline_verifier
        if verifier is None:
            raise AdapterUnavailable(
                "no offline license file verifier is configured: pass "
                "Adapters(offline_verifier=Ed25519OfflineFileVerifier(vendor_public_key))"
            )
        offline = verifier.verify(bytes(content), self.console_token, self._now())
        return self._intake(uid, offline.details, Source.OFFLINE_FILE, None)

    def _check_manageable(self, details: LicenseDetails) -> None:
        if details.product not in self.policy.manageable_products:
            raise UnsupportedProduct(
                f"license {details.public_id} is for {details.product!r}, a product this "
                "console cannot manage"
            )

    def _intake(
        self,
        uid: UserId,
        details: LicenseDetails,
        source: Source,
        key: LicenseKey | None,
    ) -> PublicId:
        """R5: a license added by key or file joins its owner's pool, created in All."""
        self._check_manageable(details)
        pid = details.public_id
        owner = details.owner.strip()
        pool_key = f"owner:{owner.casefold()}" if owner else f"license:{pid}"
        already_present = False

        def decide() -> Decision[PublicId]:
            nonlocal already_present
            lic = self._license(pid)
            already_present = lic.exists
            if lic.exists:
                log.info("license %s is already present; nothing recorded", pid)
                return pid, []
            pool_id = pool_id_for(pool_key)
            p = self._pool(pool_id)
            now = self._now()
            actor = user_actor(uid)
            emit = pool.ensure(
                p, name=owner or str(pid), group=self.all_group, source=source, now=now, actor=actor
            )
            pool.join(p, emit, pid)
            added = license.add(
                lic, details, pool_id=pool_id, source=source, key=key, now=now, actor=actor
            )
            return pid, emit.events + added

        result = self._execute(decide)
        if not already_present:
            log.info("license %s added from %s", pid, source.value)
        return result

    # -- pools (R7, R13, R19) ---------------------------------------------------------

    def _pool_ids(self, pool_ids: Iterable[object]) -> list[PoolId]:
        if isinstance(pool_ids, (str, bytes, uuid.UUID)):
            pool_ids = [pool_ids]
        if not isinstance(pool_ids, Iterable):
            raise InvalidInput(
                f"name the license pools as a list of pool ids, not {type(pool_ids).__name__}"
            )
        ids = list(dict.fromkeys(PoolId(p) for p in pool_ids))
        if not ids:
            raise InvalidInput("name at least one license pool")
        return ids

    def _visible_pool(self, d: DirectoryState, uid: UserId, pool_id: PoolId) -> PoolState:
        p = self._pool(pool_id)
        if not p.exists or p.group is None or not d.can(uid, p.group, Permission.READ):
            raise NotFound("license pool", pool_id)
        return p

    def move_pools(self, actor: object, pool_ids: Iterable[object], to_group: object) -> None:
        """R13: distribute pools to a static group (administrators only)."""
        uid = self._actor(actor)
        ids = self._pool_ids(pool_ids)
        target = GroupId(to_group)

        def decide() -> Decision[None]:
            d = self._directory()
            states = [self._visible_pool(d, uid, i) for i in ids]
            directory.require_administrator(d, uid, "moving license pools")
            directory.require_group(d, target)
            now, who = self._now(), user_actor(uid)
            out: list[DomainEvent] = []
            for p in states:
                out += pool.move(p, target, now, who)
            return None, out

        self._execute(decide)

    def remove_pools(self, actor: object, pool_ids: Iterable[object], *, confirm: bool) -> None:
        """R19: remove pools and their licenses; activated products stay activated."""
        uid = self._actor(actor)
        ids = self._pool_ids(pool_ids)

        def decide() -> Decision[None]:
            d = self._directory()
            states = [self._visible_pool(d, uid, i) for i in ids]
            directory.require_administrator(d, uid, "removing license pools")
            if confirm is not True:
                count = sum(len(p.public_ids) for p in states)
                raise ConfirmationRequired(
                    f"removing {len(states)} license pool(s) with {count} license(s) needs "
                    "explicit confirmation (confirm=True); products activated with them "
                    "stay activated"
                )
            now, who = self._now(), user_actor(uid)
            tag_state = self._tags()
            untag = Emitter(TAGS_ID, tag_state.version, now, who)
            out: list[DomainEvent] = []
            for p in states:
                out += pool.remove(p, now, who)
                tags.unassign_target(tag_state, pool_target(p.pool_id), untag)
                for pid in sorted(p.public_ids):
                    out += license.remove(self._license(pid), now, who)
                    tags.unassign_target(tag_state, license_target(pid), untag)
            return None, out + untag.events

        self._execute(decide)

    # -- tags (R28) -------------------------------------------------------------

    def create_tag(self, actor: object, name: str) -> None:
        uid = self._actor(actor)

        def decide() -> Decision[None]:
            d = self._directory()
            if not any(p >= Permission.WRITE for p in d.grants.get(uid, {}).values()):
                raise PermissionDenied(
                    "creating a tag needs WRITE permission on licenses in at least one group"
                )
            return None, tags.create(self._tags(), name, self._now(), user_actor(uid))

        self._execute(decide)

    def delete_tag(self, actor: object, name: str) -> None:
        """Deleting a tag unassigns it everywhere, so it needs an administrator."""
        uid = self._actor(actor)

        def decide() -> Decision[None]:
            directory.require_administrator(self._directory(), uid, "deleting a tag")
            return None, tags.delete(self._tags(), name, self._now(), user_actor(uid))

        self._execute(decide)

    def _tag_target(self, d: DirectoryState, uid: UserId, target: object) -> tuple[str, GroupId]:
        """The stored name of a tag target and its group; NotFound outside visibility."""
        if isinstance(target, PoolId):
            p = self._visible_pool(d, uid, target)
            assert p.group is not None
            return pool_target(p.pool_id), p.group
        if isinstance(target, uuid.UUID):
            raise NotFound("tag target", target)
        pid = PublicId(target)
        lic = self._license(pid)
        if not lic.exists or lic.pool_id is None:
            raise NotFound("license", pid)
        p = self._pool(lic.pool_id)
        if p.group is None or not d.can(uid, p.group, Permission.READ):
            raise NotFound("license", pid)
        return license_target(pid), p.group

    def _change_tag(self, actor: object, target: object, name: str, assign: bool) -> None:
        uid = self._actor(actor)
        decider = tags.assign if assign else tags.unassign

        def decide() -> Decision[None]:
            d = self._directory()
            key, group = self._tag_target(d, uid, target)
            if not d.can(uid, group, Permission.WRITE):
                raise PermissionDenied(
                    f"{'assigning' if assign else 'unassigning'} a tag needs WRITE permission "
                    f"on licenses in group {d.groups[group].name!r}"
                )
            return None, decider(self._tags(), name, key, self._now(), user_actor(uid))

        self._execute(decide)

    def assign_tag(self, actor: object, target: object, name: str) -> None:
        """Tag a pool (PoolId) or a license (PublicId or its string)."""
        self._change_tag(actor, target, name, assign=True)

    def unassign_tag(self, actor: object, target: object, name: str) -> None:
        self._change_tag(actor, target, name, assign=False)

    # -- saved filters (R8a) ------------------------------------------------------------

    def save_filter(self, actor: object, name: str, license_filter: LicenseFilter) -> None:
        uid = self._actor(actor)
        agg = filters_aggregate_id(uid)

        def decide() -> Decision[None]:
            state = self._load(agg, lambda: saved_filters.initial(uid), saved_filters.evolve)
            return None, saved_filters.save(
                state, name, license_filter, self._now(), user_actor(uid)
            )

        self._execute(decide)

    def delete_filter(self, actor: object, name: str) -> None:
        uid = self._actor(actor)
        agg = filters_aggregate_id(uid)

        def decide() -> Decision[None]:
            state = self._load(agg, lambda: saved_filters.initial(uid), saved_filters.evolve)
            return None, saved_filters.delete(state, name, self._now(), user_actor(uid))

        self._execute(decide)

    # -- queries ----------------------------------------------------------------

    def _today(self, as_of: datetime | int | None, model: ReadModel) -> datetime:
        if isinstance(as_of, datetime):
            return as_of.astimezone(UTC)
        if isinstance(as_of, int) and model.audit:
            return model.audit[-1].when
        return self._now()

    def licenses(
        self,
        actor: object,
        filter: LicenseFilter | None = None,
        *,
        as_of: datetime | int | None = None,
    ) -> list[LicenseView]:
        """The licenses the actor may see, ordered by Public ID (R11, R14)."""
        if filter is not None and not isinstance(filter, LicenseFilter):
            raise InvalidInput("filter must be a LicenseFilter")
        model = self._model(as_of)
        with self._view_lock:
            uid = self._actor(actor, model.directory)
            today = self._today(as_of, model).date()
            return model.licenses_for(uid, filter, today, self.policy)

    def license(
        self, actor: object, public_id: object, *, as_of: datetime | int | None = None
    ) -> LicenseView:
        pid = PublicId(public_id)
        model = self._model(as_of)
        with self._view_lock:
            uid = self._actor(actor, model.directory)
            lic = model.license_visible(uid, pid)
            if lic is None:
                raise NotFound("license", pid)
            return model.license_view(lic, self._today(as_of, model).date(), self.policy)

    def pools(self, actor: object, *, as_of: datetime | int | None = None) -> list[PoolView]:
        model = self._model(as_of)
        with self._view_lock:
            uid = self._actor(actor, model.directory)
            return model.pools_for(uid)

    def filters(self, actor: object) -> dict[str, LicenseFilter]:
        model = self._model(None)
        with self._view_lock:
            uid = self._actor(actor, model.directory)
            state = model.filters.get(uid)
            return dict(state.presets) if state else {}

    def history(self, actor: object, target: object) -> list[HistoryEntry]:
        """What happened to a license or pool, oldest first (R29).

        A license's history includes its pool's events that affect it (moves,
        tags, removal). Removed objects keep their history, visible to whoever
        could see them where they were last.
        """
        model = self._model(None)
        with self._view_lock:
            uid = self._actor(actor, model.directory)
            visible = model.visible_groups(uid)
            if isinstance(target, uuid.UUID):
                pool_id = PoolId(target)
                p = model.pools.get(pool_id)
                if p is None or p.group not in visible:
                    raise NotFound("license pool", pool_id)
                return model.history_of(pool_target(pool_id))
            pid = PublicId(target)
            lic = model.licenses.get(pid)
            p = model.pools.get(lic.pool_id) if lic and lic.pool_id else None
            if p is None or p.group not in visible:
                raise NotFound("license", pid)
            return model.history_of(license_target(pid))

    @property
    def position(self) -> int:
        """The log position the read model has reached (for ``as_of``)."""
        return self._catch_up().position
