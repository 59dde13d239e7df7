"""``InMemoryAgents``: management agents that carry out client tasks at once.

The test double of the ``AgentTransport`` port: every target succeeds unless
``fail(computer_id, reason)`` was called for it, and the results are known at
once, so a task and its results are saved together in one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..domain.client_tasks import AgentResult, TaskOrder
from ..domain.errors import InvalidInput
from ..domain.ids import ComputerId


class InMemoryAgents:
    """Agents held in memory: deterministic, thread-safe."""

    def __init__(self) -> None:
        self._failures: dict[ComputerId, str] = {}
        self._lock = threading.Lock()
        #: every order handed over, in order (after its task was saved)
        self.delivered: list[TaskOrder] = []

    def fail(self, computer_id: object, reason: str) -> None:
        """From now on the agent of this computer reports failure with ``reason``."""
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput("say why the agent fails: a non-empty reason")
        with self._lock:
            self._failures[ComputerId(computer_id)] = reason.strip()

    def succeed(self, computer_id: object) -> None:
        """Undo ``fail``: the agent of this computer reports success again."""
        with self._lock:
            self._failures.pop(ComputerId(computer_id), None)

    # -- the AgentTransport port ----------------------------------------------------

    def immediate_results(self, orders: Sequence[TaskOrder]) -> list[AgentResult]:
        with self._lock:
            failures = dict(self._failures) if self._failures else {}
        return [
            AgentResult(
                task_id=o.task_id,
                computer_id=o.computer_id,
                succeeded=o.computer_id not in failures,
                reason=failures.get(o.computer_id),
            )
            for o in orders
        ]

    def deliver(self, orders: Sequence[TaskOrder]) -> None:
        with self._lock:
            self.delivered.extend(orders)
