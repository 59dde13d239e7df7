"""The LicensePool decider (R5, R7, R13, R19).

Pools, not licenses, are moved and removed: a license's group is always its
pool's group, so a move is one event and a license can never be split off.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from .events import (
    DomainEvent,
    Emitter,
    LicenseJoinedPool,
    PoolCreated,
    PoolMoved,
    PoolRemoved,
)
from .evolving import replace
from .ids import GroupId, PoolId, PublicId
from .persistent_set import PersistentSet
from .values import Source


class PublicIds(PersistentSet[PublicId]):
    """The licenses of a pool: a license joining makes a new set sharing the rest
    (an import of 10,000 licenses into one pool cost quadratic time with a
    frozenset). Stored as the list of Public IDs the frozenset was stored as."""

    __slots__ = ()


NO_LICENSES = PublicIds()


@attrs.frozen
class PoolState:
    pool_id: PoolId
    version: int = 0
    exists: bool = False
    name: str = ""
    group: GroupId | None = None
    source: Source | None = None
    indivisible: bool = False
    company: str | None = None
    public_ids: PublicIds = NO_LICENSES


def initial(pool_id: PoolId) -> PoolState:
    return PoolState(pool_id=pool_id)


def evolve(state: PoolState, event: DomainEvent) -> PoolState:
    v = event.originator_version
    if isinstance(event, PoolCreated):
        return PoolState(
            pool_id=state.pool_id,
            version=v,
            exists=True,
            name=event.name,
            group=event.group,
            source=event.source,
            indivisible=event.indivisible,
            company=event.company,
        )
    if isinstance(event, LicenseJoinedPool):
        return replace(state, version=v, public_ids=state.public_ids.with_item(event.public_id))
    if isinstance(event, PoolMoved):
        return replace(state, version=v, group=event.to_group)
    if isinstance(event, PoolRemoved):
        return replace(state, version=v, exists=False, public_ids=NO_LICENSES)
    return replace(state, version=v)


def ensure(
    state: PoolState,
    *,
    name: str,
    group: GroupId,
    source: Source,
    now: datetime,
    actor: str,
    indivisible: bool = False,
    company: str | None = None,
) -> Emitter:
    """Open a decision on the pool, creating it first if it does not exist (R5).

    A pool that exists keeps its group: new licenses land where the pool is
    now, not where it was first created (R7).
    """
    emit = Emitter(state.pool_id, state.version, now, actor)
    if not state.exists:
        emit(
            PoolCreated,
            name=name,
            group=group,
            source=source,
            indivisible=indivisible,
            company=company,
        )
    return emit


def join(state: PoolState, emit: Emitter, public_id: PublicId) -> None:
    if public_id not in state.public_ids:
        emit(LicenseJoinedPool, public_id=public_id)


def move(state: PoolState, to_group: GroupId, now: datetime, actor: str) -> list[DomainEvent]:
    """R5: moving a pool to the group it is in changes nothing."""
    assert state.exists and state.group is not None
    if state.group == to_group:
        return []
    emit = Emitter(state.pool_id, state.version, now, actor)
    emit(PoolMoved, from_group=state.group, to_group=to_group)
    return emit.events


def remove(state: PoolState, now: datetime, actor: str) -> list[DomainEvent]:
    assert state.exists
    emit = Emitter(state.pool_id, state.version, now, actor)
    emit(PoolRemoved, public_ids=tuple(sorted(state.public_ids)))
    return emit.events
