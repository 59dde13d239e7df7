"""The agent transport over Redis Streams (R21): exactly-once recording of results.

Needs Redis at 127.0.0.1:6379 (``ESMC_TEST_REDIS_URL``); skipped with the
reason when it is absent, a failure when ``ESMC_REQUIRE_SERVICES=1`` (CI).
Every test uses its own stream prefix, so tests can run in parallel.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from esmc_licensing import (
    Adapters,
    InMemoryActivationServer,
    LicenseManagement,
    ManualClock,
)
from esmc_licensing.adapters.redis_agents import (
    AgentSecret,
    RedisAgent,
    RedisAgents,
    ResultConsumer,
    agent_keys,
    connect,
    result_fields,
)
from esmc_licensing.domain.client_tasks import AgentResult, TaskKind
from esmc_licensing.domain.ids import TaskId
from esmc_licensing.projections.views import TargetState
from esmc_licensing.testing import stores

from .conftest import AppFactory, branch_story
from .seats_support import add_computers, add_license, topics

#: the key the console shares with its agents to seal orders' license keys (R32)
AGENT_KEY = "YWdlbnQga2V5IGZvciB0ZXN0cyBvbmx5LCBwdWJsaWM="
REDIS_URL = os.environ.get("ESMC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PID = "3AB-C12-D34"


def _secret(computer_id: object) -> AgentSecret:
    """The secret the computer's agent was provisioned with (R34)."""
    keys = agent_keys(AGENT_KEY)
    assert keys is not None
    return keys.secret(str(computer_id))


def _agent(client: Any, computer_id: object, prefix: str) -> RedisAgent:
    return RedisAgent(client, str(computer_id), prefix=prefix, secret=_secret(computer_id))


def redis_unavailable_reason() -> str | None:
    try:
        client = connect(REDIS_URL)
        client.ping()
        client.close()
        return None
    except Exception as e:
        return f"Redis is not reachable at {REDIS_URL}: {type(e).__name__}: {str(e)[:200]}"


@pytest.fixture
def redis_client() -> Iterator[Any]:
    reason = redis_unavailable_reason()
    if reason is not None:
        if stores.REQUIRE_SERVICES:
            pytest.fail(f"ESMC_REQUIRE_SERVICES is set but {reason}")
        pytest.skip(reason)
    client = connect(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: Any) -> Iterator[str]:
    name = f"esmc-test-{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(redis_client.scan_iter(f"{name}:*"))
    if keys:
        redis_client.delete(*keys)


def _setup(make_app: AppFactory, vendor: InMemoryActivationServer, client: Any, prefix: str,
           n: int = 2) -> tuple[LicenseManagement, list[Any], Any]:
    app = make_app(agents=RedisAgents(client, prefix=prefix, agent_key=AGENT_KEY))
    story = branch_story(app)
    pid = add_license(app, vendor, PID, group=story.sydney)
    computers = add_computers(app, story.sydney, n)
    task_id = app.run_product_activation(story.larry, pid, computers)
    return app, computers, task_id


def test_r21_orders_go_to_each_agents_stream_and_results_come_back(
    make_app: AppFactory, vendor: InMemoryActivationServer, redis_client: Any, prefix: str
) -> None:
    app, computers, task_id = _setup(make_app, vendor, redis_client, prefix)
    admin = app.administrator
    assert {r.state for r in app.task(admin, task_id).results.values()} == {TargetState.DELIVERED}
    consumer = ResultConsumer(
        app, redis_client, prefix=prefix, consumer="c1", agent_key=AGENT_KEY
    )
    for cid in computers:
        agent = _agent(redis_client, cid, prefix)
        [order] = agent.receive()
        assert (order.task_id, order.computer_id, order.kind) == (
            task_id, cid, TaskKind.PRODUCT_ACTIVATION,
        )
        assert order.key is not None and order.key.reveal() == vendor.key_of(PID)
        agent.report(AgentResult(task_id, cid, succeeded=True))
    assert consumer.run_once() == 2
    view = app.task(admin, task_id)
    assert {r.state for r in view.results.values()} == {TargetState.SUCCEEDED}
    assert app.computer(admin, computers[0]).products[0].activated
    assert redis_client.xpending(consumer.stream, consumer.group)["pending"] == 0


def test_r21_a_result_delivered_twice_or_out_of_order_is_recorded_once(
    make_app: AppFactory, vendor: InMemoryActivationServer, redis_client: Any, prefix: str
) -> None:
    app, [c1, c2], task_id = _setup(make_app, vendor, redis_client, prefix)
    a1, a2 = _agent(redis_client, c1, prefix), _agent(redis_client, c2, prefix)
    # the second target's failure first, then the first's success twice, then a
    # contradicting late success of the second target
    a2.report(AgentResult(task_id, c2, succeeded=False, reason="disk full"))
    a1.report(AgentResult(task_id, c1, succeeded=True))
    a1.report(AgentResult(task_id, c1, succeeded=True))
    a2.report(AgentResult(task_id, c2, succeeded=True))
    consumer = ResultConsumer(
        app, redis_client, prefix=prefix, consumer="c1", agent_key=AGENT_KEY
    )
    assert consumer.run_once() == 4
    assert (consumer.recorded, consumer.repeated) == (2, 2)
    results = app.task(app.administrator, task_id).results
    assert results[c1].state is TargetState.SUCCEEDED
    assert (results[c2].state, results[c2].reason) == (TargetState.FAILED, "disk full")
    assert topics(app, "TaskTargetSucceeded") == 1
    assert topics(app, "TaskTargetFailed") == 1
    assert app.license(app.administrator, PID).used_units == 1


def test_r21_a_consumer_dying_before_it_saves_loses_nothing(
    make_app: AppFactory, vendor: InMemoryActivationServer, redis_client: Any, prefix: str
) -> None:
    app, [c1, _], task_id = _setup(make_app, vendor, redis_client, prefix)
    _agent(redis_client, c1, prefix).report(AgentResult(task_id, c1, succeeded=True))
    dead = ResultConsumer(
        app, redis_client, prefix=prefix, consumer="dead", agent_key=AGENT_KEY
    )
    dead.ensure_group()
    # it reads the message and dies before saving anything
    redis_client.xreadgroup(dead.group, "dead", {dead.stream: ">"}, count=10)
    assert topics(app, "TaskTargetSucceeded") == 0
    other = ResultConsumer(
        app, redis_client, prefix=prefix, consumer="other", claim_idle_ms=0, agent_key=AGENT_KEY
    )
    assert other.run_once() == 1
    assert other.recorded == 1
    assert app.task(app.administrator, task_id).results[c1].state is TargetState.SUCCEEDED
    assert redis_client.xpending(other.stream, other.group)["pending"] == 0


class Crash(Exception):
    pass


def test_r21_a_consumer_dying_after_saving_but_before_acking_records_once(
    make_app: AppFactory, vendor: InMemoryActivationServer, redis_client: Any, prefix: str
) -> None:
    app, [c1, _], task_id = _setup(make_app, vendor, redis_client, prefix)
    _agent(redis_client, c1, prefix).report(AgentResult(task_id, c1, succeeded=True))

    def crash(message_id: str, result: AgentResult) -> None:
        raise Crash(message_id)

    doomed = ResultConsumer(
        app, redis_client, prefix=prefix, consumer="c1", after_save=crash, agent_key=AGENT_KEY
    )
    with pytest.raises(Crash):
        doomed.run_once()
    assert topics(app, "TaskTargetSucceeded") == 1
    assert redis_client.xpending(doomed.stream, doomed.group)["pending"] == 1
    restarted = ResultConsumer(
        app, redis_client, prefix=prefix, consumer="c1", agent_key=AGENT_KEY
    )
    assert restarted.run_once() == 1
    assert (restarted.recorded, restarted.repeated) == (0, 1)
    assert topics(app, "TaskTargetSucceeded") == 1
    assert redis_client.xpending(restarted.stream, restarted.group)["pending"] == 0


def _killed_consumer(env: dict[str, str], prefix: str) -> None:
    """A consumer process killed (os._exit) right after saving, before acknowledging."""
    clock = ManualClock()
    app = LicenseManagement(
        env=env,
        adapters=Adapters(activation_server=InMemoryActivationServer(clock=clock), clock=clock),
    )
    consumer = ResultConsumer(
        app, connect(REDIS_URL), prefix=prefix, consumer="victim",
        after_save=lambda *_: os._exit(9), agent_key=AGENT_KEY,
    )
    consumer.run_once()
    os._exit(0)  # not reached: there is a message to save


@pytest.mark.parametrize("store_env", ["sqlite", "postgres"], indirect=True)
def test_r21_a_consumer_process_killed_before_acking_is_recorded_exactly_once(
    make_app: AppFactory,
    vendor: InMemoryActivationServer,
    redis_client: Any,
    prefix: str,
    store_env: dict[str, str],
) -> None:
    # another process cannot share an in-memory store: SQL stores only
    app, [c1, _], task_id = _setup(make_app, vendor, redis_client, prefix)
    _agent(redis_client, c1, prefix).report(AgentResult(task_id, c1, succeeded=True))
    proc = multiprocessing.get_context("spawn").Process(
        target=_killed_consumer, args=(store_env, prefix)
    )
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 9
    assert topics(app, "TaskTargetSucceeded") == 1  # saved by the killed process
    survivor = ResultConsumer(
        app, redis_client, prefix=prefix, consumer="s", claim_idle_ms=0, agent_key=AGENT_KEY
    )
    assert survivor.run_once() == 1
    assert (survivor.recorded, survivor.repeated) == (0, 1)
    assert topics(app, "TaskTargetSucceeded") == 1
    assert app.task(app.administrator, task_id).results[c1].state is TargetState.SUCCEEDED


def test_r21_a_refused_result_is_parked_acknowledged_and_records_nothing(
    make_app: AppFactory, vendor: InMemoryActivationServer, redis_client: Any, prefix: str
) -> None:
    app, [c1, _], _ = _setup(make_app, vendor, redis_client, prefix)
    consumer = ResultConsumer(
        app, redis_client, prefix=prefix, consumer="c1", agent_key=AGENT_KEY
    )
    # signed by the computer's own agent, for a task that does not exist
    signed = result_fields(AgentResult(TaskId(str(uuid.uuid4())), c1, succeeded=True),
                           _secret(c1))
    redis_client.xadd(consumer.stream, signed)
    redis_client.xadd(consumer.stream, {"task_id": "garbage", "succeeded": "1"})
    before = app._core.recorder.max_notification_id()
    assert consumer.run_once() == 2
    assert app._core.recorder.max_notification_id() == before
    assert consumer.dead == 2
    parked = redis_client.xrange(f"{consumer.stream}:dead")
    assert "client task" in parked[0][1]["refused"]
    assert redis_client.xpending(consumer.stream, consumer.group)["pending"] == 0


def test_r21_an_unreachable_broker_fails_the_targets_and_frees_the_seats(
    make_app: AppFactory, vendor: InMemoryActivationServer
) -> None:
    broken = RedisAgents(connect("redis://127.0.0.1:1/0"), prefix="nowhere")
    app = make_app(agents=broken)
    story = branch_story(app)
    pid = add_license(app, vendor, PID, group=story.sydney)
    [c] = add_computers(app, story.sydney, 1)
    task_id = app.run_product_activation(story.larry, pid, [c])
    result = app.task(story.larry, task_id).results[c]
    assert result.state is TargetState.FAILED
    assert "could not be delivered" in (result.reason or "")
    assert app.license(story.larry, pid).used_units == 0


def test_r21_the_consume_results_command_records_waiting_results(
    tmp_path: Any, vendor: InMemoryActivationServer, clock: ManualClock, redis_client: Any,
    prefix: str,
) -> None:
    from typer.testing import CliRunner

    from esmc_licensing.cli import app as cli

    path = tmp_path / "cli.db"
    lm = LicenseManagement(
        env=stores.sqlite_env(path),
        adapters=Adapters(activation_server=vendor, clock=clock,
                          agents=RedisAgents(redis_client, prefix=prefix, agent_key=AGENT_KEY)),
    )
    try:
        add_license(lm, vendor, PID)
        [c] = add_computers(lm, lm.all_group, 1)
        task_id = lm.run_product_activation(lm.administrator, PID, [c])
        _agent(redis_client, c, prefix).report(
            AgentResult(task_id, c, succeeded=True)
        )
        redis_url = REDIS_URL
        result = CliRunner().invoke(cli, [
            "--store", str(path), "consume-results", "--once", "--redis", redis_url,
            "--prefix", prefix,
        ], env={"ESMC_AGENT_KEY": AGENT_KEY})
        assert result.exit_code == 0, result.output
        assert "Settled 1 task result(s)." in result.output
        assert lm.task(lm.administrator, task_id).results[c].state is TargetState.SUCCEEDED
    finally:
        lm.close()
