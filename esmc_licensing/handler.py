"""The base of the per-area handlers that :class:`~esmc_licensing.LicenseManagement`
composes: each is built over the one service core and reaches it through
``self._core``.

The short forwards below keep the handlers' bodies reading as the command path
they are (``self._execute(decide)``, ``self._directory()``) while the state they
stand on -- the store, the aggregate cache, the views -- lives once, in the core,
shared by every area: an area holds no state of the store of its own, and no
area reaches another's internals except through what the composition root
hands it.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, TypeVar

from eventsourcing.persistence import Mapper, Recorder

from .domain import computer, tags
from .domain.directory import DirectoryState
from .domain.events import DomainEvent
from .domain.ids import ComputerId, GroupId, PoolId, PublicId, UserId
from .domain.license import LicenseState
from .domain.pool import PoolState
from .domain.values import Permission, Policy
from .eventlog import EventLog
from .projections.tables import ViewStore
from .service import Decision, ServiceBase
from .wiring import Adapters

R = TypeVar("R")
S = TypeVar("S")

__all__ = ["Handler"]


class Handler:
    """One area's commands or queries over the shared service core."""

    def __init__(self, core: ServiceBase) -> None:
        self._core = core

    # -- what the core holds (read through it, so a reopened store is seen) --------

    @property
    def adapters(self) -> Adapters:
        return self._core.adapters

    @property
    def policy(self) -> Policy:
        return self._core.policy

    @property
    def views(self) -> ViewStore:
        return self._core.views

    @property
    def env(self) -> Mapping[str, str]:
        return self._core.env

    @property
    def event_log(self) -> EventLog:
        return self._core.event_log

    @property
    def recorder(self) -> Recorder:
        return self._core.recorder

    @property
    def mapper(self) -> Mapper[uuid.UUID]:
        return self._core.mapper

    @property
    def _lock(self) -> threading.RLock:
        return self._core._lock

    @property
    def _states(self) -> OrderedDict[int, Any]:
        return self._core._states

    @property
    def _views_position(self) -> int:
        return self._core._views_position

    @property
    def all_group(self) -> GroupId:
        return self._core.all_group

    @property
    def console_token(self) -> str:
        return self._core.console_token

    # -- the command path -------------------------------------------------------------

    def _now(self) -> datetime:
        return self._core._now()

    def _refresh(self, *, views: bool = True) -> None:
        self._core._refresh(views=views)

    def _execute(self, decide: Callable[[], Decision[R]], *, dry_run: bool = False) -> R:
        return self._core._execute(decide, dry_run=dry_run)

    def _ask(self, what: str, call: Callable[[], R]) -> R:
        return self._core._ask(what, call)

    def _reading(
        self, as_of: datetime | int | None, targets: Callable[[], Iterable[str]] | None = None
    ) -> AbstractContextManager[tuple[ViewStore, DirectoryState, date]]:
        return self._core._reading(as_of, targets)

    def _effects_of_license_events(
        self, events: list[DomainEvent], now: datetime, actor: str
    ) -> list[DomainEvent]:
        return self._core._effects_of_license_events(events, now, actor)

    # -- loading aggregates -------------------------------------------------------------

    def _load(
        self,
        aggregate_id: uuid.UUID,
        initial: Callable[[], S],
        evolve: Callable[[S, DomainEvent], S],
    ) -> S:
        return self._core._load(aggregate_id, initial, evolve)

    def _prefetch(
        self, wanted: Sequence[tuple[uuid.UUID, Callable[[], Any], Callable[[Any, Any], Any]]]
    ) -> None:
        self._core._prefetch(wanted)

    def _directory(self) -> DirectoryState:
        return self._core._directory()

    def _pool(self, pool_id: PoolId) -> PoolState:
        return self._core._pool(pool_id)

    def _license(self, public_id: PublicId) -> LicenseState:
        return self._core._license(public_id)

    def _licenses(self, public_ids: Sequence[PublicId]) -> Iterator[LicenseState]:
        return self._core._licenses(public_ids)

    def _computer_states(
        self, computer_ids: Sequence[ComputerId]
    ) -> Iterator[computer.ComputerState]:
        return self._core._computer_states(computer_ids)

    def _computer(self, computer_id: ComputerId) -> computer.ComputerState:
        return self._core._computer(computer_id)

    def _tags(self) -> tags.TagsState:
        return self._core._tags()

    # -- authorisation ------------------------------------------------------------------

    def _actor(self, actor: object, d: DirectoryState | None = None) -> UserId:
        return self._core._actor(actor, d)

    def _can(self, d: DirectoryState, uid: UserId, group: GroupId, needed: Permission) -> bool:
        return self._core._can(d, uid, group, needed)

    def _visible_pool(self, d: DirectoryState, uid: UserId, pool_id: PoolId) -> PoolState:
        return self._core._visible_pool(d, uid, pool_id)

