"""The Task decider: a client task and the state of each of its targets (R21, R24, R26).

Results arrive asynchronously, possibly twice and out of order, so recording
one is idempotent: the first final result of a target (SUCCEEDED or FAILED)
stands and later reports of that target record nothing; a "delivered" mark
after a final result records nothing either.
"""

from __future__ import annotations

from datetime import datetime

import attrs
import immutables

from .client_tasks import TargetState, TaskKind
from .errors import InvalidInput
from .events import (
    ClientTaskCreated,
    DomainEvent,
    Emitter,
    TaskTargetFailed,
    TaskTargetsDelivered,
    TaskTargetSucceeded,
)
from .evolving import replace
from .ids import ComputerId, GroupId, PublicId, TaskId, UserId


@attrs.frozen
class Target:
    state: TargetState = TargetState.PENDING
    reason: str | None = None


@attrs.frozen
class TaskState:
    task_id: TaskId
    version: int = 0
    exists: bool = False
    kind: TaskKind | None = None
    user: UserId | None = None
    created_at: datetime | None = None
    public_id: PublicId | None = None
    product: str | None = None
    #: a persistent map (see :mod:`.seat_set`): each target's result makes a new
    #: one, which copied the whole map when it was a dict
    targets: immutables.Map[ComputerId, Target] = attrs.field(factory=immutables.Map)
    new_seats: frozenset[ComputerId] = frozenset()
    scope: tuple[GroupId, ...] = ()


def initial(task_id: TaskId) -> TaskState:
    return TaskState(task_id=task_id)


def _set(state: TaskState, v: int, computer_id: ComputerId, target: Target) -> TaskState:
    return replace(state, version=v, targets=state.targets.set(computer_id, target))


def evolve(state: TaskState, event: DomainEvent) -> TaskState:
    v = event.originator_version
    if isinstance(event, ClientTaskCreated):
        return TaskState(
            task_id=state.task_id,
            version=v,
            exists=True,
            kind=event.kind,
            user=event.user,
            created_at=event.timestamp,
            public_id=event.public_id,
            product=event.product,
            targets=immutables.Map(dict.fromkeys(event.targets, Target())),
            new_seats=frozenset(event.new_seats),
            scope=event.scope,
        )
    if isinstance(event, TaskTargetsDelivered):
        with state.targets.mutate() as targets:
            for cid in event.computer_ids:
                if targets.get(cid, Target()).state is TargetState.PENDING:
                    targets[cid] = Target(TargetState.DELIVERED)
            return replace(state, version=v, targets=targets.finish())
    if isinstance(event, TaskTargetSucceeded):
        return _set(state, v, event.computer_id, Target(TargetState.SUCCEEDED))
    if isinstance(event, TaskTargetFailed):
        return _set(state, v, event.computer_id, Target(TargetState.FAILED, event.reason))
    return replace(state, version=v)


# -- decisions ------------------------------------------------------------------------


def create(
    state: TaskState,
    *,
    kind: TaskKind,
    user: UserId,
    targets: tuple[ComputerId, ...],
    scope: tuple[GroupId, ...],
    public_id: PublicId | None,
    product: str | None,
    new_seats: tuple[ComputerId, ...],
    now: datetime,
    actor: str,
) -> list[DomainEvent]:
    if state.exists:
        return []
    emit = Emitter(state.task_id, state.version, now, actor)
    emit(
        ClientTaskCreated,
        task_id=state.task_id,
        kind=kind,
        user=user,
        targets=targets,
        scope=scope,
        public_id=public_id,
        product=product,
        new_seats=new_seats,
    )
    return emit.events


def delivered(
    state: TaskState, computer_ids: list[ComputerId], now: datetime, actor: str
) -> list[DomainEvent]:
    pending = tuple(
        c for c in computer_ids if state.targets.get(c, Target()).state is TargetState.PENDING
        and c in state.targets
    )
    if not pending:
        return []
    emit = Emitter(state.task_id, state.version, now, actor)
    emit(TaskTargetsDelivered, task_id=state.task_id, computer_ids=pending)
    return emit.events


def record_result(
    state: TaskState,
    computer_id: ComputerId,
    *,
    succeeded: bool,
    reason: str | None,
    now: datetime,
    actor: str,
) -> list[DomainEvent]:
    """Idempotent: a target that already has a final result records nothing."""
    target = state.targets.get(computer_id)
    if target is None:
        raise InvalidInput(f"client task {state.task_id} has no target computer {computer_id}")
    if target.state.final:
        return []
    emit = Emitter(state.task_id, state.version, now, actor)
    if succeeded:
        emit(TaskTargetSucceeded, task_id=state.task_id, computer_id=computer_id)
    else:
        text = (reason or "").strip() or "the agent reported a failure without a reason"
        emit(TaskTargetFailed, task_id=state.task_id, computer_id=computer_id, reason=text[:500])
    return emit.events
