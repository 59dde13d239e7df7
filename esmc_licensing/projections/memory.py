"""The in-memory read model: every view the queries need, folded from the log.

It reuses the domain's own ``evolve`` functions for directory, pools,
licenses, tags and filters, so a view can never disagree with the deciders
about what an event means. It is fed in log order (``apply`` with the
notification id) and remembers its position, so catching up from the store
after other processes wrote is a select from that position.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

import attrs

from ..domain import account, computer, directory, license, pool, saved_filters, tags, task
from ..domain.account import AccountState
from ..domain.computer import ComputerState
from ..domain.directory import DirectoryState
from ..domain.events import (
    CLASSES,
    AccountConnected,
    AccountDisconnected,
    AccountSynchronized,
    ClientTaskCreated,
    ComputerConnected,
    ComputerRegistered,
    ComputerRemoved,
    DirectoryInitialised,
    DomainEvent,
    ExpirationChanged,
    FilterDeleted,
    FilterSaved,
    GroupCreated,
    LicenseAdded,
    LicenseBackWithinUnits,
    LicenseJoinedPool,
    LicenseObsoleted,
    LicenseOverused,
    LicenseRegistered,
    LicenseRemoved,
    LicenseSuspended,
    LicenseUnsuspended,
    PermissionGranted,
    PoolCreated,
    PoolMoved,
    PoolRemoved,
    ProductActivated,
    ProductDeactivated,
    ProductInstalled,
    SeatReleased,
    SeatTaken,
    TagAssigned,
    TagCreated,
    TagDeleted,
    TagUnassigned,
    TaskTargetFailed,
    TaskTargetsDelivered,
    TaskTargetSucceeded,
    UnitsChangedByVendor,
    UsageReported,
    UserCreated,
)
from ..domain.filters import LicenseFilter
from ..domain.ids import ComputerId, GroupId, PoolId, PublicId, TaskId, UserId
from ..domain.license import LicenseState
from ..domain.pool import PoolState
from ..domain.saved_filters import FiltersState
from ..domain.status import license_status
from ..domain.task import TaskState
from ..domain.values import Policy
from .views import HistoryEntry, LicenseView, PoolView

DIRECTORY_EVENTS = (DirectoryInitialised, GroupCreated, UserCreated, PermissionGranted)
POOL_EVENTS = (PoolCreated, LicenseJoinedPool, PoolMoved, PoolRemoved)
LICENSE_EVENTS = (
    LicenseAdded,
    LicenseRemoved,
    UnitsChangedByVendor,
    ExpirationChanged,
    LicenseSuspended,
    LicenseUnsuspended,
    LicenseRegistered,
    LicenseObsoleted,
    UsageReported,
    LicenseOverused,
    LicenseBackWithinUnits,
    SeatTaken,
    SeatReleased,
)
TAG_EVENTS = (TagCreated, TagDeleted, TagAssigned, TagUnassigned)
FILTER_EVENTS = (FilterSaved, FilterDeleted)
COMPUTER_EVENTS = (
    ComputerRegistered,
    ComputerConnected,
    ProductInstalled,
    ProductActivated,
    ProductDeactivated,
    ComputerRemoved,
)
TASK_EVENTS = (ClientTaskCreated, TaskTargetsDelivered, TaskTargetSucceeded, TaskTargetFailed)
ACCOUNT_EVENTS = (AccountConnected, AccountDisconnected, AccountSynchronized)

#: id(event) -> (event, state before, state after): what a decision folded already
Evolved = Mapping[int, tuple[DomainEvent, Any, Any]]

_LICENSE, _TASK, _COMPUTER, _POOL, _TAG, _DIRECTORY, _ACCOUNT, _FILTER, _OTHER = (
    "license", "task", "computer", "pool", "tag", "directory", "account", "filter", "other"
)
#: event class -> which part of the read model folds it (filled on first sight)
_KINDS: dict[type, str] = {}


def _kind(cls: type) -> str:
    kind = _OTHER
    for kinds, name in (
        (LICENSE_EVENTS, _LICENSE),
        (TASK_EVENTS, _TASK),
        (COMPUTER_EVENTS, _COMPUTER),
        (POOL_EVENTS, _POOL),
        (TAG_EVENTS, _TAG),
        (DIRECTORY_EVENTS, _DIRECTORY),
        (ACCOUNT_EVENTS, _ACCOUNT),
        (FILTER_EVENTS, _FILTER),
    ):
        if issubclass(cls, kinds):
            kind = name
            break
    _KINDS[cls] = kind
    return kind


#: isinstance with a tuple (a ``X | Y`` union is built and checked more slowly)
_SEAT_EVENTS = (SeatTaken, SeatReleased)
_PRODUCT_EVENTS = (ProductActivated, ProductDeactivated)


def _reuse(evolved: Evolved | None, event: DomainEvent, before: Any) -> Any:
    """The state a decision already folded from ``before`` with ``event``, or None.

    ``evolve`` is pure, so the same state and event give the same result: it is
    reused only for this very event object and this very state (or, for an
    aggregate without events, its initial state: version 0 on both sides).
    """
    if not evolved:
        return None
    found = evolved.get(id(event))
    if found is None or found[0] is not event:
        return None
    prior = found[1]
    if prior is before or (prior.version == 0 and before.version == 0):
        return found[2]
    return None

_HIDDEN_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "actor", "key", "credentials", "password"}
)


def pool_target(pool_id: object) -> str:
    return f"pool:{pool_id}"


def license_target(public_id: object) -> str:
    return f"license:{public_id}"


def computer_target(computer_id: object) -> str:
    return f"computer:{computer_id}"


def task_target(task_id: object) -> str:
    return f"task:{task_id}"


@attrs.define
class AuditRecord:
    """One event of the audit log with the targets it names (R29).

    Mutable only because a frozen attrs class pays a setattr call per field
    at construction, and one is made for every event applied; nothing
    changes a record once made.
    """

    position: int
    targets: tuple[str, ...]
    event: DomainEvent

    @property
    def when(self) -> datetime:
        return self.event.timestamp

    @property
    def actor(self) -> str:
        return self.event.actor

    @property
    def what(self) -> str:
        return CLASSES[type(self.event)].topic

    @property
    def details(self) -> Mapping[str, str]:
        """Computed when asked: most records are never read."""
        return _details(self.event)


def _details(event: DomainEvent) -> dict[str, str]:
    out = {}
    for a in attrs.fields(type(event)):
        if a.name in _HIDDEN_FIELDS:
            continue
        value = getattr(event, a.name)
        if isinstance(value, enum.IntEnum):
            value = value.name
        elif isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, tuple | list | set | frozenset):
            value = ", ".join(sorted(str(v) for v in value))  # not the Python repr
        out[a.name] = "" if value is None else str(value)
    return out


def filter_matcher(f: LicenseFilter) -> Callable[[LicenseView, tuple[str, str, str]], bool]:
    """``LicenseFilter.matches`` for a view, with only the filter's non-empty fields.

    ``folded`` is the view's (public id, product, owner), case-folded once.
    ``tests/test_fastpath.py`` checks that it agrees with ``matches``.
    """
    levels = frozenset(f.levels)
    reasons = frozenset(f.reasons)
    tag_set = frozenset(t.casefold() for t in f.tags)
    types = frozenset(f.types)
    products = frozenset(f.products)
    needle = f.text.casefold() if f.text is not None else None

    def match(v: LicenseView, folded: tuple[str, str, str]) -> bool:
        if levels and v.status.level not in levels:
            return False
        if reasons and reasons.isdisjoint(v.status.reasons):
            return False
        if tag_set and not any(t.casefold() in tag_set for t in v.tags):
            return False
        if types and v.license_type not in types:
            return False
        if products and v.product not in products:
            return False
        return needle is None or (
            needle in folded[0] or needle in folded[1] or needle in folded[2]
        )

    return match


class ReadModel:
    """Views of the whole store; not thread-safe by itself (the app locks it)."""

    def __init__(self) -> None:
        self.position = 0
        self.directory: DirectoryState = directory.initial()
        self.pools: dict[PoolId, PoolState] = {}
        self.licenses: dict[PublicId, LicenseState] = {}
        self.tags = tags.initial()
        self.tags_of: dict[str, frozenset[str]] = {}
        self.filters: dict[UserId, FiltersState] = {}
        #: managed computers (R20) and client tasks (R21), removed ones kept
        self.computers: dict[ComputerId, ComputerState] = {}
        self.tasks: dict[TaskId, TaskState] = {}
        #: connected accounts (R17), by account aggregate id
        self.accounts: dict[Any, AccountState] = {}
        self.audit: list[AuditRecord] = []
        #: ``history_of``'s index of ``audit`` by target, built when a history
        #: is first asked for and extended with what was applied since (the
        #: command path never pays for it); covers ``audit[:_indexed]``
        self._by_target: dict[str, list[AuditRecord]] = {}
        self._indexed = 0
        self._visible_cache: dict[tuple[UserId, int], frozenset[GroupId]] = {}
        #: the current state of every aggregate the views fold, by aggregate id
        #: (its ``.int``: an int hashes in C, a UUID in Python): the command
        #: side decides on these (one fold per event serves both)
        self.states: dict[int, Any] = {}
        #: every aggregate id (``.int``) that has events up to ``position``
        self.seen: set[int] = set()
        #: bumped whenever anything may have changed (``apply``, ``views_changed``)
        self._stamp = 0
        #: public id -> (license state, group, own tags, pool tags, today, policy, view, folded)
        self._view_cache: dict[Any, tuple[Any, ...]] = {}
        #: (stamp, today, policy) and every listed license as (group, view, folded text)
        self._rows_key: tuple[Any, ...] | None = None
        self._rows: list[tuple[GroupId, LicenseView, tuple[str, str, str]]] = []

    def views_changed(self) -> None:
        """Entities were replaced from outside ``apply`` (rows loaded): drop derived lists."""
        self._stamp += 1

    # -- feeding ----------------------------------------------------------------

    def apply_all(self, items: Iterable[tuple[int, DomainEvent]]) -> None:
        for position, event in items:
            self.apply(position, event)

    def apply(
        self, position: int, event: DomainEvent, evolved: Evolved | None = None
    ) -> None:
        """Fold one event; ``evolved``: states a decision already folded (see ``Evolved``)."""
        targets: tuple[str, ...]
        self._stamp += 1
        self.seen.add(event.originator_id.int)
        kind = _KINDS.get(type(event)) or _kind(type(event))
        if kind is _LICENSE:
            pid: PublicId = event.public_id  # type: ignore[attr-defined]
            state = self.licenses.get(pid) or license.initial(pid)
            after = _reuse(evolved, event, state)
            if after is None:
                after = license.evolve(state, event)
            self.licenses[pid] = self.states[event.originator_id.int] = after
            target = license_target(pid)
            if isinstance(event, _SEAT_EVENTS):
                targets = (target, computer_target(event.computer_id))
            else:
                targets = (target,)
            if isinstance(event, LicenseRemoved):
                self._untag(target)
        elif kind is _TASK:
            oid = event.originator_id
            tid = oid if type(oid) is TaskId else TaskId(oid)
            t = self.tasks.get(tid) or task.initial(tid)
            t_after = _reuse(evolved, event, t)
            if t_after is None:
                t_after = task.evolve(t, event)
            self.tasks[tid] = self.states[event.originator_id.int] = t_after
            targets = (task_target(tid),)
        elif kind is _COMPUTER:
            targets = self._apply_computer(event, evolved)
        else:
            targets = self._apply_other(kind, event)
        self.audit.append(AuditRecord(position, targets, event))
        self.position = max(self.position, position)

    def _apply_other(self, kind: str, event: DomainEvent) -> tuple[str, ...]:
        """Pools, tags, the directory, accounts and saved filters; returns the audit targets."""
        targets: tuple[str, ...] = ()
        if kind is _POOL:
            pool_id = PoolId(event.originator_id)
            before = self.pools.get(pool_id) or pool.initial(pool_id)
            after = pool.evolve(before, event)
            self.pools[pool_id] = self.states[event.originator_id.int] = after
            members = before.public_ids | after.public_ids
            if isinstance(event, LicenseJoinedPool):
                # another license joining does not affect this one's history (R29)
                members = frozenset({event.public_id})
            targets = (pool_target(pool_id), *(license_target(p) for p in sorted(members)))
            if isinstance(event, PoolRemoved):
                self._untag(pool_target(pool_id))
        elif kind is _TAG:
            self.tags = self.states[event.originator_id.int] = tags.evolve(self.tags, event)
            targets = (f"tag:{event.name}",)  # type: ignore[attr-defined]
            if isinstance(event, (TagAssigned, TagUnassigned)):
                current = self.tags_of.get(event.target, frozenset())
                if isinstance(event, TagAssigned):
                    self.tags_of[event.target] = current | {event.name}
                else:
                    self.tags_of[event.target] = current - {event.name}
                targets = (event.target, *self._members(event.target), *targets)
        elif kind is _DIRECTORY:
            self.directory = self.states[event.originator_id.int] = directory.evolve(
                self.directory, event
            )
            self._visible_cache.clear()
            targets = ("directory",)
        elif kind is _ACCOUNT:
            acc = self.accounts.get(event.originator_id) or account.initial(event.originator_id)
            acc = account.evolve(acc, event)
            self.accounts[event.originator_id] = self.states[event.originator_id.int] = acc
            targets = (f"account:{event.originator_id}",)
        elif kind is _FILTER:
            user = event.user  # type: ignore[attr-defined]
            presets = self.filters.get(user) or saved_filters.initial(user)
            self.filters[user] = self.states[event.originator_id.int] = saved_filters.evolve(
                presets, event
            )
            targets = (f"user:{user}",)
        return targets

    def _apply_computer(self, event: DomainEvent, evolved: Evolved | None) -> tuple[str, ...]:
        """Computers (R20-R27); returns the audit targets."""
        oid = event.originator_id
        cid = oid if type(oid) is ComputerId else ComputerId(oid)
        before = self.computers.get(cid) or computer.initial(cid)
        after = _reuse(evolved, event, before)
        if after is None:
            after = computer.evolve(before, event)
        self.computers[cid] = self.states[event.originator_id.int] = after
        targets: tuple[str, ...] = (computer_target(cid),)
        if isinstance(event, _PRODUCT_EVENTS) and event.public_id:
            targets = (*targets, license_target(event.public_id))
        if isinstance(event, ComputerRemoved):
            self._untag(computer_target(cid))
        return targets

    def _members(self, target: str) -> tuple[str, ...]:
        if target.startswith("pool:"):
            p = self.pools.get(PoolId(target[5:]))
            if p is not None:
                return tuple(license_target(x) for x in sorted(p.public_ids))
        return ()

    def _untag(self, target: str) -> None:
        self.tags_of.pop(target, None)

    # -- visibility (R11, R14) ----------------------------------------------------

    def visible_groups(self, user: UserId) -> frozenset[GroupId]:
        key = (user, self.directory.version)
        found = self._visible_cache.get(key)
        if found is None:
            found = self.directory.visible_groups(user)
            self._visible_cache[key] = found
        return found

    def pool_visible(self, user: UserId, pool_id: PoolId) -> PoolState | None:
        p = self.pools.get(pool_id)
        if p is None or not p.exists or p.group not in self.visible_groups(user):
            return None
        return p

    def license_visible(self, user: UserId, public_id: PublicId) -> LicenseState | None:
        lic = self.licenses.get(public_id)
        if lic is None or not lic.exists or lic.pool_id is None:
            return None
        if self.pool_visible(user, lic.pool_id) is None:
            return None
        return lic

    # -- views ------------------------------------------------------------------

    def license_view(self, lic: LicenseState, today: date, policy: Policy) -> LicenseView:
        assert lic.pool_id is not None and lic.source is not None
        p = self.pools[lic.pool_id]
        assert p.group is not None
        own = self.tags_of.get(license_target(lic.public_id), frozenset())
        inherited = self.tags_of.get(pool_target(lic.pool_id), frozenset())
        return LicenseView(
            public_id=lic.public_id,
            pool_id=lic.pool_id,
            group=p.group,
            license_type=lic.license_type,
            product=lic.product,
            units=lic.units,
            used_units=lic.used_units,
            offline_units=lic.offline_units,
            subunits=lic.subunits,
            expires=lic.expires,
            subscription=lic.subscription,
            owner=lic.owner,
            contact=lic.contact,
            source=lic.source,
            tags=own | inherited,
            status=license_status(
                units=lic.units,
                used_units=lic.used_units,
                expires=lic.expires,
                today=today,
                policy=policy,
                suspended=lic.suspended,
                registered=lic.registered,
                registration_url=lic.registration_url,
                obsolete=lic.obsolete,
            ),
            product_code=lic.product_code,
            license_user=lic.license_user,
            key_last4=lic.key.last4 if lic.key is not None else None,
        )

    def _cached_view(
        self, lic: LicenseState, group: GroupId, today: date, policy: Policy
    ) -> tuple[LicenseView, tuple[str, str, str]]:
        """The license's view, rebuilt only when something it shows changed.

        A view depends on the license state, its pool's group, its own and its
        pool's tags, today (its status) and the policy: states and tag sets are
        immutable and replaced on change, so identity says "unchanged".
        """
        pid = lic.public_id
        own = self.tags_of.get(license_target(pid))
        inherited = self.tags_of.get(pool_target(lic.pool_id))
        c = self._view_cache.get(pid)
        if (
            c is not None
            and c[0] is lic
            and c[2] is own
            and c[3] is inherited
            and c[1] == group
            and c[4] == today
            and (c[5] is policy or c[5] == policy)
        ):
            return c[6], c[7]
        view = self.license_view(lic, today, policy)
        folded = (view.public_id.casefold(), view.product.casefold(), view.owner.casefold())
        self._view_cache[pid] = (lic, group, own, inherited, today, policy, view, folded)
        return view, folded

    def _listed(
        self, today: date, policy: Policy
    ) -> list[tuple[GroupId, LicenseView, tuple[str, str, str]]]:
        """Every license a query may list, by Public ID, with its group; cached
        until the model changes or the day or the policy does."""
        key = (self._stamp, today, policy)
        if self._rows_key == key:
            return self._rows
        rows = []
        pools = self.pools
        for pid in sorted(self.licenses):
            lic = self.licenses[pid]
            if not lic.exists or lic.pool_id is None:
                continue
            p = pools.get(lic.pool_id)
            if p is None or not p.exists or p.group is None:
                continue
            view, folded = self._cached_view(lic, p.group, today, policy)
            rows.append((p.group, view, folded))
        if len(self._view_cache) > 2 * len(rows) + 1000:  # licenses gone for good
            listed = {v.public_id for _, v, _ in rows}
            self._view_cache = {k: c for k, c in self._view_cache.items() if k in listed}
        self._rows_key, self._rows = key, rows
        return rows

    def licenses_for(
        self, user: UserId, license_filter: LicenseFilter | None, today: date, policy: Policy
    ) -> list[LicenseView]:
        visible = self.visible_groups(user)
        rows = self._listed(today, policy)
        if license_filter is None:
            return [v for g, v, _ in rows if g in visible]
        match = filter_matcher(license_filter)
        return [v for g, v, folded in rows if g in visible and match(v, folded)]

    def pool_view(self, p: PoolState) -> PoolView:
        assert p.group is not None and p.source is not None
        return PoolView(
            pool_id=p.pool_id,
            name=p.name,
            group=p.group,
            source=p.source,
            tags=self.tags_of.get(pool_target(p.pool_id), frozenset()),
            public_ids=tuple(sorted(p.public_ids)),
            indivisible=p.indivisible,
            company=p.company,
        )

    def pools_for(self, user: UserId) -> list[PoolView]:
        visible = self.visible_groups(user)
        rows = [
            self.pool_view(p)
            for p in self.pools.values()
            if p.exists and p.group in visible
        ]
        return sorted(rows, key=lambda v: (v.name.casefold(), str(v.pool_id)))

    def history_of(self, target: str) -> list[HistoryEntry]:
        audit = self.audit
        if len(audit) < self._indexed:  # the list was cut (a runner's model): start again
            self._by_target, self._indexed = {}, 0
        index = self._by_target
        for rec in audit[self._indexed :]:
            for t in dict.fromkeys(rec.targets):
                index.setdefault(t, []).append(rec)
        self._indexed = len(audit)
        return [
            HistoryEntry(
                when=rec.when,
                actor=self.actor_name(rec.actor),
                what=rec.what,
                target=target,
                details=rec.details,
                position=rec.position,
            )
            for rec in index.get(target, ())
        ]

    def actor_name(self, actor: str) -> str:
        if actor.startswith("user:"):
            try:
                u = self.directory.users.get(UserId(actor[5:]))
            except Exception:
                u = None
            if u is not None:
                return u.name
        return actor

    def snapshot_counts(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "licenses": sum(1 for x in self.licenses.values() if x.exists),
            "pools": sum(1 for x in self.pools.values() if x.exists),
        }
