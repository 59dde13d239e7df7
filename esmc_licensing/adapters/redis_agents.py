"""An ``AgentTransport`` over Redis Streams, and the consumer of agents' results.

Layout (``prefix`` defaults to ``esmc``):

- ``{prefix}:agent:{agent_id}``: one stream per agent; a saved task's orders
  are appended (XADD) to the streams of its targets' agents.
- ``{prefix}:results``: agents append their results here. A consumer group
  (``ResultConsumer``) reads them; each message is acknowledged (XACK) only
  after its result is saved in the event store.
- ``{prefix}:results:dead``: results the library refused for good (not
  signed by the agent of the computer they name, unknown task or target,
  malformed), with the reason, acknowledged so they stop coming back; they
  are recorded nowhere (R34).
- ``{prefix}:orders``: a hash from task and target to its order's stream
  and id, so that a settled target's order is deleted with its result.

Authentication (R34): each agent's secret is derived from the console's agent
key (``ESMC_AGENT_KEY``) and the agent's id, so nothing about it is stored;
an agent is provisioned with it when its computer is registered
(``esmc-licensing agent-secret``). Orders are signed (HMAC-SHA256) for one
agent and carry the license key sealed with that agent's secret (AES-GCM,
R32); results are signed by the agent and must name its own computer. Settled
results (recorded, repeated or refused) are acknowledged and then deleted
from the results stream, with the order they answer.

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

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
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
from ..keyring import KEY_BYTES, Keyring, from_setting
from .field_cipher import FieldCipher, is_sealed

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
_SECRET_LABEL = b"esmc-licensing agent secret v1|"


@attrs.frozen(repr=False)
class AgentSecret:
    """One agent's secret (R34): it signs the agent's results and checks the
    console's orders, and opens the license keys sealed for this agent (R32).

    Derived from the console's agent key and the agent's id, so the store
    keeps nothing about it and an agent's secret tells nothing about another
    agent's; ``text`` is what an agent is provisioned with when its computer
    is registered (``esmc-licensing agent-secret``). Its repr shows ids only.
    """

    agent_id: str
    key_id: str
    key: bytes

    def __repr__(self) -> str:
        return f"AgentSecret({self.agent_id!r}, key_id={self.key_id!r})"

    @property
    def text(self) -> str:
        return f"{self.key_id}:{base64.b64encode(self.key).decode()}"

    @classmethod
    def parse(cls, agent_id: str, text: str) -> AgentSecret:
        key_id_, _, encoded = text.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key_id_ or len(key) != KEY_BYTES:
            raise InvalidInput("an agent secret is KEYID:BASE64 as `agent-secret` printed it")
        return cls(agent_id, key_id_, key)

    @functools.cached_property
    def cipher(self) -> FieldCipher:
        return FieldCipher(Keyring.of("agent", self.key))

    def sign(self, fields: Mapping[str, str]) -> str:
        return hmac.new(self.key, _canonical(fields), hashlib.sha256).hexdigest()

    def verifies(self, fields: Mapping[str, str]) -> bool:
        signature = fields.get("sig")
        return isinstance(signature, str) and hmac.compare_digest(signature, self.sign(fields))


def _canonical(fields: Mapping[str, str]) -> bytes:
    """What is signed: every field but the signature, in a fixed order."""
    return orjson.dumps({k: fields[k] for k in sorted(fields) if k != "sig"})


class AgentKeys:
    """The console's agent key (``ESMC_AGENT_KEY``): each agent's secret is
    derived from it, so rotating it (a new key after a comma) re-issues them."""

    def __init__(self, ring: Keyring) -> None:
        self.ring = ring

    def __repr__(self) -> str:
        return f"AgentKeys(ids={self.ring.ids!r})"

    def secret(self, agent_id: str, key_id_: str | None = None) -> AgentSecret:
        kid = self.ring.current_id if key_id_ is None else key_id_
        master = self.ring.key(kid)  # UnknownKey (InvalidInput) for a key not held
        key = hmac.new(master, _SECRET_LABEL + agent_id.encode(), hashlib.sha256).digest()
        return AgentSecret(agent_id, kid, key)


def agent_keys(key: AgentKeys | Keyring | str | None = None) -> AgentKeys | None:
    """The console's agent key: given, or from ``ESMC_AGENT_KEY`` (base64 keys of
    32 bytes, comma separated, the last current). It is not the data key: an
    agent never holds what decrypts the store."""
    if isinstance(key, AgentKeys):
        return key
    if key is None:
        key = os.environ.get(AGENT_KEY_VARIABLE) or None
    if key is None:
        return None
    if isinstance(key, Keyring):
        return AgentKeys(key)
    ring = from_setting("agent", key, variable=AGENT_KEY_VARIABLE)
    return AgentKeys(ring)


def _no_agent_key(what: str) -> DataKeyMissing:
    return DataKeyMissing(
        f"no agent key is configured ({AGENT_KEY_VARIABLE}), so {what}: orders and "
        "results are signed, and license keys sealed, with each agent's secret (R32, R34)"
    )


def _order_name(task_id: object, computer_id: object) -> str:
    return f"{task_id}|{computer_id}"


def _order_context(order_agent: str, task_id: str, computer_id: str) -> bytes:
    return f"esmc-licensing/order/v1|{order_agent}|{task_id}|{computer_id}|license_key".encode()


def order_fields(order: TaskOrder, secret: AgentSecret | None = None) -> dict[str, str]:
    """An order as stream fields, signed with the agent's secret (R34), its
    license key sealed for that agent only (R32)."""
    if secret is None:
        raise _no_agent_key("a task cannot be sent to an agent")
    fields = {
        "task_id": str(order.task_id),
        "kind": order.kind.value,
        "computer_id": str(order.computer_id),
        "agent_id": order.agent_id,
        "product": order.product,
        "kid": secret.key_id,
    }
    if order.public_id is not None:
        fields["public_id"] = str(order.public_id)
    if order.key is not None:
        sealed = secret.cipher.seal(
            order.key.reveal(),
            _order_context(order.agent_id, fields["task_id"], fields["computer_id"]),
        )
        fields["license_key"] = orjson.dumps(sealed).decode()
    fields["sig"] = secret.sign(fields)
    return fields


def _opened_key(fields: Mapping[str, str], secret: AgentSecret) -> LicenseKey | None:
    value = fields.get("license_key")
    if not value:
        return None
    try:
        sealed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InvalidInput("the order's license key is not a sealed key") from None
    context = _order_context(
        _text(fields, "agent_id"), _text(fields, "task_id"), _text(fields, "computer_id")
    )
    plain = secret.cipher.open(sealed, context) if is_sealed(sealed) else None
    if plain is None:
        raise InvalidInput("the order's license key cannot be opened with this agent's secret")
    return LicenseKey(plain)


def order_from_fields(fields: Mapping[str, str], secret: AgentSecret) -> TaskOrder:
    """An order as its agent reads it: refused unless the console signed it for
    this agent (``InvalidInput``)."""
    if fields.get("agent_id") != secret.agent_id or not secret.verifies(fields):
        raise InvalidInput("the order is not signed by the console for this agent")
    key = _opened_key(fields, secret)
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


def result_fields(result: AgentResult, secret: AgentSecret | None = None) -> dict[str, str]:
    """A result as stream fields, signed by its agent (R34)."""
    fields = {
        "task_id": str(result.task_id),
        "computer_id": str(result.computer_id),
        "succeeded": "1" if result.succeeded else "0",
    }
    if result.reason is not None:
        fields["reason"] = result.reason
    if secret is not None:
        fields["agent_id"] = secret.agent_id
        fields["kid"] = secret.key_id
        fields["sig"] = secret.sign(fields)
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


class Unauthenticated(InvalidInput):
    """A result not signed by the agent of the computer it names (R34)."""


def authenticate(fields: Mapping[str, str], keys: AgentKeys | None) -> AgentResult:
    """The result a message carries, if the agent of the computer it names
    signed it (R34); else ``Unauthenticated`` (the message is kept aside)."""
    if keys is None:
        raise _no_agent_key("results cannot be authenticated")
    result = result_from_fields(fields)
    agent_id = fields.get("agent_id")
    if not agent_id or not fields.get("kid"):
        raise Unauthenticated("the result is not signed by an agent")
    if agent_id != str(result.computer_id):
        raise Unauthenticated("the result names another computer than its agent's")
    try:
        secret = keys.secret(agent_id, fields["kid"])
    except InvalidInput:
        raise Unauthenticated("the result is signed with an agent key not held") from None
    if not secret.verifies(fields):
        raise Unauthenticated("the result's signature does not verify")
    return result


class RedisAgents:
    """The ``AgentTransport`` port over Redis Streams (see the module docs)."""

    def __init__(
        self,
        client: redis.Redis | None = None,
        *,
        url: str = DEFAULT_URL,
        prefix: str = DEFAULT_PREFIX,
        maxlen: int | None = 100_000,
        agent_key: AgentKeys | Keyring | str | None = None,
    ) -> None:
        self.client: Any = client if client is not None else connect(url)
        self.prefix = prefix
        self.maxlen = maxlen
        #: derives each agent's secret (R34); None: no order is sent
        self.keys = agent_keys(agent_key)

    def agent_secret(self, agent_id: str) -> AgentSecret:
        """The secret to provision an agent with (its orders and results use it)."""
        if self.keys is None:
            raise _no_agent_key("no agent secret can be issued")
        return self.keys.secret(agent_id)

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
        # signed and sealed before anything is sent: no agent key, nothing sent
        messages = [
            order_fields(o, None if self.keys is None else self.keys.secret(o.agent_id))
            for o in orders
        ]
        try:
            pipe = self.client.pipeline(transaction=True)
            for o, fields in zip(orders, messages, strict=True):
                pipe.xadd(
                    self.agent_stream(o.agent_id), fields,
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
    """One agent's end of the streams: receive orders, report results (tools, tests).

    ``secret`` is the agent's own (``AgentSecret`` or its ``text``): orders not
    signed by the console for this agent are set aside in ``refused``.
    """

    def __init__(
        self,
        client: redis.Redis,
        agent_id: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        secret: AgentSecret | str,
    ):
        self.client: Any = client
        self.agent_id = agent_id
        self.secret = secret if isinstance(secret, AgentSecret) else AgentSecret.parse(
            agent_id, secret
        )
        if self.secret.agent_id != agent_id:
            raise InvalidInput("that agent secret was issued to another agent")
        self.transport = RedisAgents(client, prefix=prefix)
        self.refused: list[tuple[str, str]] = []
        self._last = "0"

    def receive(self, count: int = 100, block_ms: int | None = None) -> list[TaskOrder]:
        stream = self.transport.agent_stream(self.agent_id)
        answer = self.client.xread({stream: self._last}, count=count, block=block_ms)
        orders = []
        for _, messages in answer or []:
            for message_id, fields in messages:
                self._last = message_id
                try:
                    orders.append(order_from_fields(fields, self.secret))
                except LicensingError as e:
                    log.warning("order %s refused by agent %s: %s", message_id, self.agent_id, e)
                    self.refused.append((message_id, str(e)))
        return orders

    def report(self, result: AgentResult) -> str:
        message_id: str = self.client.xadd(
            self.transport.results_stream, result_fields(result, self.secret)
        )
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
        agent_key: AgentKeys | Keyring | str | None = None,
    ) -> None:
        self.app = app
        self.client: Any = client if client is not None else connect(url)
        self.transport = RedisAgents(self.client, prefix=prefix, agent_key=agent_key)
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
            result = authenticate(fields, self.transport.keys)
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
    "AgentKeys",
    "AgentSecret",
    "RedisAgent",
    "RedisAgents",
    "ResultConsumer",
    "Unauthenticated",
    "agent_keys",
    "authenticate",
    "connect",
    "order_fields",
    "order_from_fields",
    "run_result_consumer",
]
