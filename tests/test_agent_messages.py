"""R34 untrusted messages: orders and results through Redis are authenticated.

Each agent has a secret derived from the console's agent key and its id
(issued when its computer is registered). Orders are signed by the console for
one agent and carry the license key sealed for that agent only; results are
signed by the agent. A result that does not verify, names another computer
than its agent's, or is for a task its computer was not sent is kept aside in
the dead-letter stream and recorded nowhere. Needs Redis (skipped with the
reason when absent, a failure with ``ESMC_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esmc_licensing import InMemoryActivationServer, InvalidInput, LicenseManagement
from esmc_licensing.adapters.redis_agents import (
    AgentSecret,
    RedisAgent,
    RedisAgents,
    ResultConsumer,
    agent_keys,
    connect,
    order_fields,
    order_from_fields,
    result_fields,
)
from esmc_licensing.domain.client_tasks import AgentResult, TaskKind, TaskOrder
from esmc_licensing.domain.ids import ComputerId, LicenseKey, PublicId, TaskId
from esmc_licensing.projections.views import TargetState
from esmc_licensing.testing import stores

from .conftest import AppFactory, branch_story
from .seats_support import add_computers, add_license
from .test_redis_transport import AGENT_KEY, REDIS_URL, redis_unavailable_reason

PID = "3AB-C12-D34"
OTHER_KEY = "YW5vdGhlciBjb25zb2xlIGtleSwgdGVzdHMgb25seSE="


def _keys(key: str = AGENT_KEY) -> Any:
    keys = agent_keys(key)
    assert keys is not None
    return keys


def _secret(computer_id: object, key: str = AGENT_KEY) -> AgentSecret:
    return _keys(key).secret(str(computer_id))


@pytest.fixture
def redis_client() -> Iterator[Any]:
    reason = redis_unavailable_reason()
    if reason is not None:
        if stores.REQUIRE_SERVICES:
            pytest.fail(f"ESMC_REQUIRE_SERVICES is set but {reason}")
        pytest.skip(reason)
    client = connect(REDIS_URL)
    prefix = f"esmc-test-{uuid.uuid4().hex[:12]}"
    client.test_prefix = prefix  # type: ignore[attr-defined]
    yield client
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _setup(
    make_app: AppFactory, vendor: InMemoryActivationServer, client: Any
) -> tuple[LicenseManagement, list[ComputerId], TaskId, str]:
    prefix = client.test_prefix
    app = make_app(agents=RedisAgents(client, prefix=prefix, agent_key=AGENT_KEY))
    story = branch_story(app)
    pid = add_license(app, vendor, PID, group=story.sydney)
    computers = add_computers(app, story.sydney, 3)
    task_id = app.run_product_activation(story.larry, pid, computers[:2])
    return app, computers, task_id, prefix


def _consumer(app: LicenseManagement, client: Any, prefix: str) -> ResultConsumer:
    return ResultConsumer(app, client, prefix=prefix, consumer="c1", agent_key=AGENT_KEY)


def _states(app: LicenseManagement, task_id: TaskId) -> dict[Any, TargetState]:
    return {c: r.state for c, r in app.task(app.administrator, task_id).results.items()}


def test_r34_results_that_fail_authentication_are_kept_aside_and_recorded_nowhere(
    make_app: AppFactory, vendor: InMemoryActivationServer, redis_client: Any
) -> None:
    app, [c1, c2, c3], task_id, prefix = _setup(make_app, vendor, redis_client)
    consumer = _consumer(app, redis_client, prefix)
    stream = consumer.stream
    failed = AgentResult(task_id, c1, succeeded=False, reason="\x1b[2J\x1b[31mFAKE")
    forged = [
        result_fields(failed),  # unsigned: anyone who can write to the stream
        result_fields(failed, _secret(c1, OTHER_KEY)),  # signed with a key not held
        {
            **result_fields(AgentResult(task_id, c1, succeeded=True), _secret(c1)),
            "succeeded": "0",
        },  # signed, then altered
        result_fields(failed, _secret(c2)),  # c2's agent speaking for c1
        # c1's own agent, for a task that does not exist
        result_fields(AgentResult(TaskId(str(uuid.uuid4())), c1, succeeded=False), _secret(c1)),
        # c3's own agent, for a task c3 was not sent
        result_fields(AgentResult(task_id, c3, succeeded=False), _secret(c3)),
    ]
    for fields in forged:
        redis_client.xadd(stream, fields)
    before, states = app._core.recorder.max_notification_id(), _states(app, task_id)
    assert consumer.run_once() == len(forged)
    assert app._core.recorder.max_notification_id() == before  # recorded nowhere
    assert _states(app, task_id) == states == {c1: TargetState.DELIVERED, c2: TargetState.DELIVERED}
    assert consumer.dead == len(forged) and consumer.recorded == 0
    parked = [fields for _, fields in redis_client.xrange(f"{stream}:dead")]
    assert len(parked) == len(forged)
    reasons = [p["refused"] for p in parked]
    assert "not signed by an agent" in reasons[0]
    assert "key not held" in reasons[1]
    assert "does not verify" in reasons[2]
    assert "another computer" in reasons[3]
    assert "not found" in reasons[4]
    assert reasons[5]  # not a target of the task
    assert redis_client.xpending(stream, consumer.group)["pending"] == 0

    # the genuine result is recorded
    RedisAgent(redis_client, str(c1), prefix=prefix, secret=_secret(c1)).report(
        AgentResult(task_id, c1, succeeded=True)
    )
    assert consumer.run_once() == 1 and consumer.recorded == 1
    assert _states(app, task_id)[c1] is TargetState.SUCCEEDED


def test_r34_an_agent_refuses_orders_the_console_did_not_sign_for_it(
    make_app: AppFactory, vendor: InMemoryActivationServer, redis_client: Any
) -> None:
    _, [c1, c2, _], task_id, prefix = _setup(make_app, vendor, redis_client)
    agents = RedisAgents(redis_client, prefix=prefix, agent_key=AGENT_KEY)
    stream = agents.agent_stream(str(c1))
    # c2's genuine order copied into c1's stream, an order signed with another
    # console's key, and c1's genuine order tampered with
    [(_, for_c2)] = redis_client.xrange(agents.agent_stream(str(c2)))
    redis_client.xadd(stream, for_c2)
    order = TaskOrder(
        task_id,
        TaskKind.PRODUCT_ACTIVATION,
        c1,
        str(c1),
        "ESET Endpoint Security",
        PublicId(PID),
        LicenseKey(vendor.key_of(PID)),
    )
    redis_client.xadd(stream, order_fields(order, _secret(c1, OTHER_KEY)))
    [(_, genuine)] = redis_client.xrange(stream, count=1)
    redis_client.xadd(stream, {**genuine, "kind": TaskKind.DEACTIVATION.value})
    agent = RedisAgent(redis_client, str(c1), prefix=prefix, secret=_secret(c1).text)
    received = agent.receive()
    assert [(o.task_id, o.computer_id) for o in received] == [(task_id, c1)]
    assert received[0].key is not None and received[0].key.reveal() == vendor.key_of(PID)
    assert len(agent.refused) == 3
    assert all("not signed by the console for this agent" in why for _, why in agent.refused)
    # another agent's secret is refused, and opens nothing of c1's orders
    with pytest.raises(InvalidInput, match="another agent"):
        RedisAgent(redis_client, str(c1), prefix=prefix, secret=_secret(c2))
    with pytest.raises(InvalidInput, match="not signed by the console for this agent"):
        order_from_fields(genuine, _secret(c2))
    with pytest.raises(InvalidInput, match="cannot be opened"):
        order_from_fields(
            {
                **genuine,
                "agent_id": str(c2),
                "sig": _secret(c2).sign({**genuine, "agent_id": str(c2)}),
            },
            _secret(c2),
        )


def test_r34_r32_settled_results_and_their_orders_are_trimmed_from_the_streams(
    make_app: AppFactory, vendor: InMemoryActivationServer, redis_client: Any
) -> None:
    app, [c1, c2, _], task_id, prefix = _setup(make_app, vendor, redis_client)
    consumer = _consumer(app, redis_client, prefix)
    agents = consumer.transport
    assert redis_client.xlen(agents.agent_stream(str(c1))) == 1
    RedisAgent(redis_client, str(c1), prefix=prefix, secret=_secret(c1)).report(
        AgentResult(task_id, c1, succeeded=True)
    )
    assert consumer.run_once() == 1
    assert redis_client.xlen(consumer.stream) == 0  # acknowledged, then trimmed
    assert redis_client.xlen(agents.agent_stream(str(c1))) == 0  # its order too
    assert redis_client.xlen(agents.agent_stream(str(c2))) == 1  # still waiting
    assert redis_client.hkeys(agents.orders_index) == [f"{task_id}|{c2}"]


@given(
    field=st.sampled_from(["task_id", "computer_id", "succeeded", "reason", "agent_id", "kid"]),
    value=st.text(max_size=40),
)
def test_r34_changing_any_field_of_a_signed_result_breaks_its_signature(
    field: str, value: str
) -> None:
    computer = ComputerId(str(uuid.UUID(int=7)))
    secret = _secret(computer)
    signed = result_fields(
        AgentResult(TaskId(str(uuid.UUID(int=9))), computer, succeeded=False, reason="disk full"),
        secret,
    )
    assert secret.verifies(signed)
    changed = {**signed, field: value}
    assert secret.verifies(changed) == (signed[field] == value)
    assert not _secret(ComputerId(str(uuid.UUID(int=8)))).verifies(signed)


def test_r34_an_agent_secret_shows_ids_only() -> None:
    secret = _secret("agent-1")
    assert secret.text not in repr(secret) and "agent-1" in repr(secret)
    assert AgentSecret.parse("agent-1", secret.text) == secret


def test_r34_the_agent_secret_command_issues_a_registered_computers_secret(
    tmp_path: Any, vendor: InMemoryActivationServer
) -> None:
    from typer.testing import CliRunner

    from esmc_licensing import Adapters
    from esmc_licensing.cli import app as cli

    env = stores.sqlite_env(tmp_path / "s.db")
    lm = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor))
    [managed] = add_computers(lm, lm.all_group, 1)
    lm.register_computer(lm.administrator, "by-name", lm.all_group, managed=False)
    lm.close()
    base = {"ESMC_DATA_KEY": env["ESMC_DATA_KEY"], "ESMC_AGENT_KEY": AGENT_KEY}
    runner = CliRunner()

    def run(*args: str, **extra: str | None) -> Any:
        return runner.invoke(cli, ["--store", str(tmp_path / "s.db"), *args], env={**base, **extra})

    issued = run("agent-secret", "pc-0")
    assert issued.exit_code == 0, issued.output
    assert issued.stdout.strip() == _secret(managed).text
    assert run("agent-secret", "by-name").exit_code == 2  # no agent to provision
    assert run("agent-secret", "pc-0", ESMC_AGENT_KEY=None).exit_code == 2
