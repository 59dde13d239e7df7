"""An ``AgentTransport`` over Redis Streams, and the consumer of agents' results.

Layout (``prefix`` defaults to ``esmc``):

- ``{prefix}:agent:{agent_id}``: one stream per agent; a saved task's orders
  are appended (XADD) to the streams of its targets' agents.
- ``{prefix}:results``: agents append their results here. A consumer group
  (``ResultConsumer``) reads them; each message is acknowledged (XACK) only
  after its result is saved in the event store.
- ``{prefix}:results:dead``: results the library refused for good (unknown
  task or target, malformed), with the reason, acknowledged so they stop
  coming back.

Exactly once, end to end: delivery is at least once (a consumer that dies
between reading and acknowledging leaves the message pending; it is read
again when that consumer restarts, or claimed by another one with XAUTOCLAIM
after ``claim_idle_ms``), and recording is idempotent (``record_task_result``
records the first final result of a target and nothing for a repeat, in the
same atomic save that decides it). So a result delivered twice, out of order,
or after a crash is recorded exactly once.

Transient failures (the store unavailable, retries running out) leave the
message unacknowledged: it is retried.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..domain.client_tasks import AgentResult, TaskKind, TaskOrder
from ..domain.errors import (
    AdapterUnavailable,
    ConcurrencyConflict,
    DataKeyMissing,
    InvalidInput,
    LicensingError,
)
from ..domain.ids import ComputerId, LicenseKey, PublicId, TaskId
from ..keyring import Keyring
from .field_cipher import FieldCipher, is_sealed, keyring_from_setting

if TYPE_CHECKING:  # pragma: no cover
    import redis

log = logging.getLogger("esmc_licensing.redis_agents")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "esmc"
DEFAULT_GROUP = "esmc-results"


def connect(url: str = DEFAULT_URL) -> redis.Redis:
    """A redis-py client that returns ``str``."""
    import redis as redis_lib

    return redis_lib.Redis.from_url(url, decode_responses=True, socket_timeout=10)


def _text(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"the message has no {name}")
    return value


AGENT_KEY_VARIABLE = "ESMC_AGENT_KEY"


def agent_cipher(key: Keyring | FieldCipher | str | None = None) -> FieldCipher | None:
    """The key sealing license keys in task orders (R32): given, or from
    ``ESMC_AGENT_KEY`` (base64 keys of 32 bytes, comma separated, the last
    current). The console and its agents share it; it is not the data key, so
    an agent never holds what decrypts the store."""
    if isinstance(key, FieldCipher):
        return key
    if key is None:
        key = os.environ.get(AGENT_KEY_VARIABLE) or None
    if key is None:
        return None
    ring = key if isinstance(key, Keyring) else keyring_from_setting(key, AGENT_KEY_VARIABLE)
    return FieldCipher(ring)


def _order_name(task_id: object, computer_id: object) -> str:
    return f"{task_id}|{computer_id}"


def _order_context(order_agent: str, task_id: str, computer_id: str) -> bytes:
    return f"esmc-licensing/order/v1|{order_agent}|{task_id}|{computer_id}|license_key".encode()


def order_fields(order: TaskOrder, cipher: FieldCipher | None = None) -> dict[str, str]:
    fields = {
        "task_id": str(order.task_id),
        "kind": order.kind.value,
        "computer_id": str(order.computer_id),
        "agent_id": order.agent_id,
        "product": order.product,
    }
    if order.public_id is not None:
        fields["public_id"] = str(order.public_id)
    if order.key is not None:
        # the agent activates the product with it: sealed, never in plain text (R32)
        if cipher is None:
            raise DataKeyMissing(
                f"no agent key is configured ({AGENT_KEY_VARIABLE}), so a license key "
                "cannot be sent to an agent: orders carry it encrypted with the key the "
                "console shares with its agents"
            )
        sealed = cipher.seal(
            order.key.reveal(),
            _order_context(order.agent_id, fields["task_id"], fields["computer_id"]),
        )
        fields["license_key"] = orjson.dumps(sealed).decode()
    return fields


def _opened_key(fields: Mapping[str, str], cipher: FieldCipher | None) -> LicenseKey | None:
    value = fields.get("license_key")
    if not value:
        return None
    if not value.startswith("{"):
        return LicenseKey(value)  # an order written before R32
    try:
        sealed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InvalidInput("the order's license key is neither a key nor a sealed key") from None
    context = _order_context(
        _text(fields, "agent_id"), _text(fields, "task_id"), _text(fields, "computer_id")
    )
    plain = None if cipher is None or not is_sealed(sealed) else cipher.open(sealed, context)
    if plain is None:
        raise InvalidInput(
            "the order's license key cannot be decrypted with this agent's key "
            f"({AGENT_KEY_VARIABLE})"
        )
    return LicenseKey(plain)


def order_from_fields(fields: Mapping[str, str], cipher: FieldCipher | None = None) -> TaskOrder:
    key = _opened_key(fields, cipher)
    pid = fields.get("public_id")
    return TaskOrder(
        task_id=TaskId(_text(fields, "task_id")),
        kind=TaskKind(_text(fields, "kind")),
        computer_id=ComputerId(_text(fields, "computer_id")),
        agent_id=_text(fields, "agent_id"),
        product=_text(fields, "product"),
        public_id=PublicId(pid) if pid else None,
        key=key,
    )


def result_fields(result: AgentResult) -> dict[str, str]:
    fields = {
        "task_id": str(result.task_id),
        "computer_id": str(result.computer_id),
        "succeeded": "1" if result.succeeded else "0",
    }
    if result.reason is not None:
        fields["reason"] = result.reason
    return fields


def result_from_fields(fields: Mapping[str, str]) -> AgentResult:
    succeeded = fields.get("succeeded")
    if succeeded not in ("0", "1"):
        raise InvalidInput("the result message says succeeded=1 or succeeded=0")
    return AgentResult(
        task_id=TaskId(_text(fields, "task_id")),
        computer_id=ComputerId(_text(fields, "computer_id")),
        succeeded=succeeded == "1",
        reason=fields.get("reason"),
    )


class RedisAgents:
    """The ``AgentTransport`` port over Redis Streams (see the module docs)."""

    def __init__(
        self,
        client: redis.Redis | None = None,
        *,
        url: str = DEFAULT_URL,
        prefix: str = DEFAULT_PREFIX,
        maxlen: int | None = 100_000,
        agent_key: Keyring | FieldCipher | str | None = None,
    ) -> None:
        self.client: Any = client if client is not None else connect(url)
        self.prefix = prefix
        self.maxlen = maxlen
        #: seals the license keys of orders (R32); None: orders with a key are refused
        self.cipher = agent_cipher(agent_key)

    def agent_stream(self, agent_id: str) -> str:
        return f"{self.prefix}:agent:{agent_id}"

    @property
    def results_stream(self) -> str:
        return f"{self.prefix}:results"

    @property
    def orders_index(self) -> str:
        """A hash: task and target -> the agent stream and id of its order."""
        return f"{self.prefix}:orders"

    def trim(self, task_id: object, computer_id: object) -> None:
        """Delete a settled target's order from its agent's stream."""
        name = _order_name(task_id, computer_id)
        where = self.client.hget(self.orders_index, name)
        if where:
            agent_id, _, message_id = where.partition(" ")
            self.client.xdel(self.agent_stream(agent_id), message_id)
        self.client.hdel(self.orders_index, name)

    def immediate_results(self, orders: Sequence[TaskOrder]) -> list[AgentResult]:
        return []  # results come back through the results stream

    def deliver(self, orders: Sequence[TaskOrder]) -> None:
        for o in orders:  # refused before anything is sent: no key, no plain text
            if o.key is not None and self.cipher is None:
                order_fields(o, None)
        try:
            pipe = self.client.pipeline(transaction=True)
            for o in orders:
                pipe.xadd(
                    self.agent_stream(o.agent_id), order_fields(o, self.cipher),
                    maxlen=self.maxlen, approximate=True,
                )
            ids = pipe.execute()
            # where each order is, so it is trimmed once its result is settled
            self.client.hset(self.orders_index, mapping={
                _order_name(o.task_id, o.computer_id): f"{o.agent_id} {message_id}"
                for o, message_id in zip(orders, ids, strict=True)
            })
        except Exception as e:
            raise AdapterUnavailable(
                f"the agent broker (Redis) could not take the task ({type(e).__name__})"
            ) from e


class RedisAgent:
    """One agent's end of the streams: receive orders, report results (tools, tests)."""

    def __init__(
        self,
        client: redis.Redis,
        agent_id: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        agent_key: Keyring | FieldCipher | str | None = None,
    ):
        self.client: Any = client
        self.agent_id = agent_id
        self.transport = RedisAgents(client, prefix=prefix, agent_key=agent_key)
        self._last = "0"

    def receive(self, count: int = 100, block_ms: int | None = None) -> list[TaskOrder]:
        stream = self.transport.agent_stream(self.agent_id)
        answer = self.client.xread({stream: self._last}, count=count, block=block_ms)
        orders = []
        for _, messages in answer or []:
            for message_id, fields in messages:
                self._last = message_id
                orders.append(order_from_fields(fields, self.transport.cipher))
        return orders

    def report(self, result: AgentResult) -> str:
        message_id: str = self.client.xadd(self.transport.results_stream, result_fields(result))
        return message_id


Recorder = Callable[[AgentResult], bool]


class ResultConsumer:
    """Reads agents' results through a consumer group and records them.

    ``app`` is a ``LicenseManagement`` (anything with ``record_task_result``).
    A message is acknowledged only after its result is saved; ``after_save``
    is a hook between the two (tests use it to simulate a crash there).
    """

    def __init__(
        self,
        app: Any,
        client: redis.Redis | None = None,
        *,
        url: str = DEFAULT_URL,
        prefix: str = DEFAULT_PREFIX,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        claim_idle_ms: int = 60_000,
        after_save: Callable[[str, AgentResult], None] | None = None,
    ) -> None:
        self.app = app
        self.client: Any = client if client is not None else connect(url)
        self.transport = RedisAgents(self.client, prefix=prefix)
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.after_save = after_save
        self.recorded = 0
        self.repeated = 0
        self.dead = 0
        self._group_ready = False
        #: targets whose result was recorded (or repeated) in this round: their
        #: orders are trimmed once the result is acknowledged
        self._settled: dict[tuple[str, str], bool] = {}

    @property
    def stream(self) -> str:
        return self.transport.results_stream

    def ensure_group(self) -> None:
        import redis as redis_lib

        if self._group_ready:
            return
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis_lib.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._group_ready = True

    def _handle(self, message_id: str, fields: Mapping[str, str]) -> bool:
        """Record one message; True when it may be acknowledged."""
        try:
            result = result_from_fields(fields)
            recorded = self.app.record_task_result(
                result.task_id, result.computer_id,
                succeeded=result.succeeded, reason=result.reason,
            )
        except (AdapterUnavailable, ConcurrencyConflict) as e:
            log.warning("result %s not recorded yet, will retry: %s", message_id, e)
            return False
        except LicensingError as e:
            # refused for good: park it with the reason so it stops coming back
            log.warning("result %s refused: %s", message_id, e)
            self.client.xadd(
                f"{self.stream}:dead",
                {**fields, "message_id": message_id, "refused": str(e)},
            )
            self.dead += 1
            return True
        except Exception as e:  # the store failed: leave it pending
            log.warning("result %s not recorded (%s), will retry", message_id, type(e).__name__)
            return False
        if recorded:
            self.recorded += 1
        else:
            self.repeated += 1
        self._settled[(str(result.task_id), str(result.computer_id))] = True
        if self.after_save is not None:
            self.after_save(message_id, result)
        return True

    def _process(self, messages: Sequence[tuple[str, Mapping[str, str]]]) -> int:
        done = 0
        for message_id, fields in messages:
            if fields is None:  # deleted from the stream while pending
                self.client.xack(self.stream, self.group, message_id)
                continue
            if self._handle(message_id, fields):
                # settled: acknowledged, then trimmed with the order it answers
                self.client.xack(self.stream, self.group, message_id)
                self.client.xdel(self.stream, message_id)
                task_id, computer_id = fields.get("task_id"), fields.get("computer_id")
                if task_id and computer_id and self._settled.pop((task_id, computer_id), False):
                    self.transport.trim(task_id, computer_id)
                done += 1
        return done

    def run_once(self, *, count: int = 100, block_ms: int | None = None) -> int:
        """One round: own pending messages, stale ones of dead consumers, then new ones.

        Returns how many messages were settled (recorded, repeated or refused).
        """
        self.ensure_group()
        done = 0
        # 1. what this consumer read before a crash and never acknowledged
        mine = self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=count)
        for _, messages in mine or []:
            done += self._process(messages)
        # 2. what other consumers read and left pending for too long
        claimed = self.client.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_time=self.claim_idle_ms,
            start_id="0-0", count=count,
        )
        done += self._process(claimed[1])
        # 3. new messages
        new = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        for _, messages in new or []:
            done += self._process(messages)
        return done

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        block_ms: int = 1000,
        max_messages: int | None = None,
        idle_rounds: int | None = None,
    ) -> int:
        """Consume until ``stop`` is set, ``max_messages`` are settled, or
        ``idle_rounds`` rounds in a row found nothing. Returns the number settled."""
        total = 0
        idle = 0
        while stop is None or not stop.is_set():
            done = self.run_once(block_ms=block_ms)
            total += done
            idle = 0 if done else idle + 1
            if max_messages is not None and total >= max_messages:
                break
            if idle_rounds is not None and idle >= idle_rounds:
                break
        return total


def run_result_consumer(
    app: Any,
    *,
    url: str = DEFAULT_URL,
    prefix: str = DEFAULT_PREFIX,
    group: str = DEFAULT_GROUP,
    consumer: str | None = None,
    claim_idle_ms: int = 60_000,
    stop: threading.Event | None = None,
    block_ms: int = 1000,
    max_messages: int | None = None,
    idle_rounds: int | None = None,
) -> int:
    """The entry point: consume agents' results from Redis into ``app``'s store.

    Run one or more of these (each with its own ``consumer`` name) beside the
    applications that create tasks with ``RedisAgents``. Returns the number of
    messages settled when it stops.
    """
    worker = ResultConsumer(
        app, url=url, prefix=prefix, group=group, consumer=consumer,
        claim_idle_ms=claim_idle_ms,
    )
    try:
        return worker.run(
            stop, block_ms=block_ms, max_messages=max_messages, idle_rounds=idle_rounds
        )
    except LicensingError:
        raise
    except Exception as e:
        raise AdapterUnavailable(
            f"the agent broker (Redis at {url}) failed: {type(e).__name__}: {e}"
        ) from e


__all__ = [
    "AGENT_KEY_VARIABLE",
    "RedisAgent",
    "RedisAgents",
    "ResultConsumer",
    "agent_cipher",
    "connect",
    "order_fields",
    "order_from_fields",
    "run_result_consumer",
]
