"""Values of client tasks shared by the Task decider, the events and the agent port.

A client task (R21, R24, R26) is sent to the management agents of its target
computers; each agent reports one result per target, asynchronously, possibly
twice and out of order. ``TaskOrder`` is what an agent receives and
``AgentResult`` what it sends back; both are plain values so that any
transport (in memory, Redis Streams) can carry them.
"""

from __future__ import annotations

import enum

import attrs

from .errors import InvalidInput
from .ids import ComputerId, LicenseKey, PublicId, TaskId


class TaskKind(enum.Enum):
    PRODUCT_ACTIVATION = "PRODUCT_ACTIVATION"
    SOFTWARE_INSTALL = "SOFTWARE_INSTALL"
    DEACTIVATION = "DEACTIVATION"
    DELETE_NOT_CONNECTING = "DELETE_NOT_CONNECTING"


class TargetState(enum.Enum):
    """Where one target of a task is; SUCCEEDED and FAILED are final."""

    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def final(self) -> bool:
        return self in (TargetState.SUCCEEDED, TargetState.FAILED)


@attrs.frozen
class TaskOrder:
    """What one agent is asked to do for one target of a task.

    ``key`` is the license key the product activates with (None for a license
    added from an offline file); its ``str`` and ``repr`` stay masked (R2).
    """

    task_id: TaskId
    kind: TaskKind
    computer_id: ComputerId
    agent_id: str
    product: str
    public_id: PublicId | None = None
    key: LicenseKey | None = attrs.field(default=None, repr=False)


@attrs.frozen
class AgentResult:
    """An agent's report on one target: success, or failure with a reason."""

    task_id: TaskId
    computer_id: ComputerId
    succeeded: bool
    reason: str | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.succeeded, bool):
            raise InvalidInput("a task result says succeeded=True or succeeded=False")
        if self.reason is not None and not isinstance(self.reason, str):
            raise InvalidInput("a task result's reason must be text")
