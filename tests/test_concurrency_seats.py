"""R23 under concurrency: one 10-unit license, many activations racing.

Seats are counted on the License aggregate, so the ceiling holds through the
store's optimistic concurrency: 8 threads on one application (every store),
and 4 processes each with its own application on one store (SQLite,
PostgreSQL). Each activation targets a different computer.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from esmc_licensing import (
    Adapters,
    ComputerId,
    ConcurrencyConflict,
    InMemoryActivationServer,
    LicenseManagement,
    ManualClock,
    OverusePolicy,
    OveruseRefused,
    Policy,
)
from esmc_licensing.projections.views import TargetState

from .conftest import AppFactory
from .seats_support import add_computers, add_license, topics

PID = "3AB-C12-D34"
UNITS = 10
PER_WORKER = 3
CEILING = {p: p.ceiling(UNITS) for p in OverusePolicy}


def _outcome(app: LicenseManagement, computer_id: object) -> str:
    try:
        task_id = app.run_product_activation(app.administrator, PID, [computer_id])
    except OveruseRefused:
        return "refused"
    except ConcurrencyConflict:
        return "conflict"  # reported as refused too; nothing recorded
    result = app.task(app.administrator, task_id).results[ComputerId(computer_id)]
    return "ok" if result.state is TargetState.SUCCEEDED else f"failed: {result.reason}"


def _check(app: LicenseManagement, outcomes: list[str], policy: OverusePolicy) -> None:
    total = len(outcomes)
    ok = outcomes.count("ok")
    conflicts = outcomes.count("conflict")
    refused = outcomes.count("refused") + conflicts
    ceiling = CEILING[policy]
    assert ok + refused == total, outcomes  # every refusal was reported as one
    assert conflicts <= 2, outcomes  # retries running out stays rare
    assert ok == (total - conflicts if ceiling is None else min(total - conflicts, ceiling))
    core = app._core
    fresh = LicenseManagement(env=core.env, adapters=core.adapters, policy=core.policy) if (
        not app._core.env.get("PERSISTENCE_MODULE", "").endswith("popo")
    ) else app
    try:
        view = fresh.license(fresh.administrator, PID)
        assert view.used_units == ok
        assert ceiling is None or view.used_units <= ceiling
        # no event lost: one seat, one task, one success per successful result
        assert topics(fresh, "SeatTaken") == ok
        assert topics(fresh, "ClientTaskCreated") == ok
        assert topics(fresh, "TaskTargetSucceeded") == ok
        assert topics(fresh, "SeatReleased") == 0
        expected = ["LicenseOverused"] if ok > UNITS else []
        assert topics(fresh, "LicenseOverused") == len(expected)
    finally:
        if fresh is not app:
            fresh.close()


def _race(n: int, work: Callable[[int], str]) -> list[str]:
    barrier = threading.Barrier(n)
    results: list[list[str]] = [[] for _ in range(n)]

    def run(i: int) -> None:
        barrier.wait()
        for j in range(PER_WORKER):
            results[i].append(work(i * PER_WORKER + j))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for rs in results for r in rs]


@pytest.mark.parametrize("policy", list(OverusePolicy), ids=lambda p: p.value)
def test_r23_eight_threads_never_exceed_the_ceiling(
    make_app: AppFactory, vendor: InMemoryActivationServer, policy: OverusePolicy
) -> None:
    app = make_app(policy=Policy(overuse=policy))
    add_license(app, vendor, PID, units=UNITS)
    computers = add_computers(app, app.all_group, 8 * PER_WORKER)
    outcomes = _race(8, lambda i: _outcome(app, computers[i]))
    _check(app, outcomes, policy)


# -- processes --------------------------------------------------------------------------------


def _worker(
    env: dict[str, str],
    policy: OverusePolicy,
    computers: list[str],
    barrier: object,
    opening: object,
    out: object,
) -> None:
    clock = ManualClock(datetime(2026, 1, 1, 9, 0, tzinfo=UTC))
    app = None
    try:
        # eventsourcing's PostgreSQL create_table races with itself ("tuple
        # concurrently updated"): open the applications one at a time.
        with opening:  # type: ignore[attr-defined]
            app = LicenseManagement(
                env=env,
                adapters=Adapters(
                    activation_server=InMemoryActivationServer(clock=clock), clock=clock
                ),
                policy=Policy(overuse=policy),
            )
        barrier.wait(timeout=60)  # type: ignore[attr-defined]
        out.put([_outcome(app, c) for c in computers])  # type: ignore[attr-defined]
    except BaseException as e:  # reported to the parent, which fails the test
        out.put([f"error: {type(e).__name__}: {e}"])  # type: ignore[attr-defined]
    finally:
        if app is not None:
            app.close()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
@pytest.mark.parametrize("policy", list(OverusePolicy), ids=lambda p: p.value)
def test_r23_four_processes_on_one_store_never_exceed_the_ceiling(
    request: pytest.FixtureRequest,
    vendor: InMemoryActivationServer,
    clock: ManualClock,
    policy: OverusePolicy,
    store: str,
) -> None:
    env: dict[str, str] = request.getfixturevalue(f"{store}_env")
    app = LicenseManagement(
        env=env,
        adapters=Adapters(activation_server=vendor, clock=clock),
        policy=Policy(overuse=policy),
    )
    try:
        add_license(app, vendor, PID, units=UNITS)
        computers = [str(c) for c in add_computers(app, app.all_group, 4 * PER_WORKER)]
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(4)
        opening = ctx.Lock()
        out = ctx.Queue()
        procs = [
            ctx.Process(
                target=_worker,
                args=(
                    env, policy, computers[i * PER_WORKER:(i + 1) * PER_WORKER],
                    barrier, opening, out,
                ),
            )
            for i in range(4)
        ]
        for p in procs:
            p.start()
        outcomes = [o for _ in procs for o in out.get(timeout=90)]
        for p in procs:
            p.join(timeout=60)
        assert not [o for o in outcomes if o.startswith("error")], outcomes
        _check(app, outcomes, policy)
    finally:
        app.close()
