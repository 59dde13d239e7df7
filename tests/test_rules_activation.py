"""Product activation, software install and overuse (R21, R22, R23), on every store."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from datetime import date, timedelta

import pytest

from esmc_licensing import (
    InMemoryActivationServer,
    InvalidInput,
    LicenseManagement,
    LicenseUnusable,
    ManualClock,
    NotFound,
    OverusePolicy,
    OveruseRefused,
    Permission,
    PermissionDenied,
    Policy,
    StatusReason,
)
from esmc_licensing.adapters.agents import InMemoryAgents
from esmc_licensing.domain.client_tasks import AgentResult, TaskOrder
from esmc_licensing.domain.ids import TaskId
from esmc_licensing.projections.views import TargetState

from .conftest import PRODUCT, AppFactory, Story, branch_story
from .seats_support import SERVER, add_computers, add_license, overuse_facts, refused, topics

PID = "3AB-C12-D34"


# -- R21 activation --------------------------------------------------------------------


def test_r21_branch_admin_with_use_activates_and_each_result_is_recorded(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    [c1, c2] = add_computers(app, story.sydney, 2)
    task_id = app.run_product_activation(story.larry, pid, [c1, c2])
    view = app.task(story.larry, task_id)
    assert {cid: r.state for cid, r in view.results.items()} == {
        c1: TargetState.SUCCEEDED,
        c2: TargetState.SUCCEEDED,
    }
    [product] = app.computer(story.larry, c1).products
    assert (product.product, product.public_id, product.activated) == (PRODUCT, pid, True)
    assert app.license(story.larry, pid).used_units == 2


def test_r21_needs_use_on_the_license_group(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.tokyo)
    [c] = add_computers(app, story.tokyo, 1)
    # Makio sees Tokyo (READ) but cannot use it
    refused(app, PermissionDenied, lambda: app.run_product_activation(story.makio, pid, [c]),
            "needs USE permission")
    # Larry sees neither: the same NotFound as for a license that does not exist (R14)
    refused(app, NotFound, lambda: app.run_product_activation(story.larry, pid, [c]),
            f"license {pid} not found")
    refused(app, NotFound, lambda: app.run_product_activation(story.larry, "ZZZ-ZZZ-ZZZ", [c]),
            "license ZZZ-ZZZ-ZZZ not found")


def test_r21_needs_use_on_each_target_computer_group(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    [mine] = add_computers(app, story.sydney, 1, prefix="syd")
    [theirs] = add_computers(app, story.tokyo, 1, prefix="tyo")
    refused(app, NotFound, lambda: app.run_product_activation(story.larry, pid, [mine, theirs]),
            "computer .* not found")
    # with READ on Tokyo Larry sees the computer, but may not use it
    app.grant(story.admin, story.larry, story.tokyo, Permission.READ)
    error = refused(
        app, PermissionDenied, lambda: app.run_product_activation(story.larry, pid, [mine, theirs]),
        "needs USE permission on group 'Tokyo'",
    )
    assert "tyo-0" in str(error)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("expired", "expired"),
        ("suspended", "suspended"),
        ("unregistered", "not registered"),
    ],
)
def test_r21_unusable_licenses_are_refused_before_any_task_exists(
    app: LicenseManagement,
    story: Story,
    vendor: InMemoryActivationServer,
    clock: ManualClock,
    change: str,
    says: str,
) -> None:
    pid = add_license(
        app, vendor, PID, group=story.sydney, expires=date(2026, 2, 1),
        registered=change != "unregistered",
    )
    [c] = add_computers(app, story.sydney, 1)
    if change == "expired":
        clock.advance(timedelta(days=45))
    elif change == "suspended":
        vendor.suspend(pid)
        app.synchronize()
    error = refused(app, LicenseUnusable, lambda: app.run_product_activation(story.larry, pid, [c]),
                    says)
    assert pid in str(error)
    refused(app, LicenseUnusable, lambda: app.installer_license(story.larry, pid), says)
    assert topics(app, "ClientTaskCreated") == 0


def test_r21_a_failed_target_records_the_reason_and_frees_its_seat(
    make_app: AppFactory, vendor: InMemoryActivationServer
) -> None:
    agents = InMemoryAgents()
    app = make_app(agents=agents)
    story = branch_story(app)
    pid = add_license(app, vendor, PID, group=story.sydney)
    [ok, bad] = add_computers(app, story.sydney, 2)
    agents.fail(bad, "the product could not reach the activation server")
    task_id = app.run_product_activation(story.larry, pid, [ok, bad])
    results = app.task(story.larry, task_id).results
    assert results[ok].state is TargetState.SUCCEEDED
    assert results[bad].state is TargetState.FAILED
    assert results[bad].reason == "the product could not reach the activation server"
    assert app.license(story.larry, pid).used_units == 1
    assert not app.computer(story.larry, bad).products[0].activated
    assert [o.computer_id for o in agents.delivered] == [ok, bad]


class LaterAgents:
    """A broker-like transport: results arrive later, through record_task_result."""

    def __init__(self) -> None:
        self.delivered: list[TaskOrder] = []

    def immediate_results(self, orders: Sequence[TaskOrder]) -> list[AgentResult]:
        return []

    def deliver(self, orders: Sequence[TaskOrder]) -> None:
        self.delivered.extend(orders)


def test_r21_results_arriving_later_twice_or_out_of_order_are_recorded_once(
    make_app: AppFactory, vendor: InMemoryActivationServer
) -> None:
    agents = LaterAgents()
    app = make_app(agents=agents)
    story = branch_story(app)
    pid = add_license(app, vendor, PID, group=story.sydney)
    [c1, c2] = add_computers(app, story.sydney, 2)
    task_id = app.run_product_activation(story.larry, pid, [c1, c2])
    view = app.task(story.larry, task_id)
    assert {r.state for r in view.results.values()} == {TargetState.DELIVERED}
    # seats are reserved while the task runs, so racing tasks cannot overbook
    assert app.license(story.larry, pid).used_units == 2
    assert app.record_task_result(task_id, c2, succeeded=False, reason="disk full") is True
    before = app._core.recorder.max_notification_id()
    assert app.record_task_result(task_id, c2, succeeded=False, reason="disk full") is False
    assert app.record_task_result(task_id, c2, succeeded=True) is False  # first result stands
    assert app._core.recorder.max_notification_id() == before
    assert app.record_task_result(task_id, c1, succeeded=True) is True
    assert app.record_task_result(task_id, c1, succeeded=True) is False
    view = app.task(story.larry, task_id)
    assert view.results[c1].state is TargetState.SUCCEEDED
    assert (view.results[c2].state, view.results[c2].reason) == (TargetState.FAILED, "disk full")
    assert app.license(story.larry, pid).used_units == 1
    assert topics(app, "TaskTargetSucceeded") == 1
    assert topics(app, "TaskTargetFailed") == 1


def test_r21_result_for_an_unknown_task_or_target_is_refused(
    make_app: AppFactory, vendor: InMemoryActivationServer
) -> None:
    app = make_app(agents=LaterAgents())
    story = branch_story(app)
    pid = add_license(app, vendor, PID, group=story.sydney)
    [c1, c2] = add_computers(app, story.sydney, 2)
    task_id = app.run_product_activation(story.larry, pid, [c1])
    refused(app, NotFound, lambda: app.record_task_result(
        "00000000-0000-4000-8000-000000000000", c1, succeeded=True), "client task .* not found")
    refused(app, InvalidInput, lambda: app.record_task_result(task_id, c2, succeeded=True),
            "has no target computer")
    refused(app, InvalidInput, lambda: app.record_task_result(task_id, c1, succeeded="yes"),
            "succeeded=True or succeeded=False")
    refused(app, InvalidInput, lambda: app.record_task_result(task_id, "not-an-id", succeeded=True),
            "is not a ComputerId")


def test_r21_software_install_installs_and_activates_with_the_license(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney, product=SERVER)
    [c] = add_computers(app, story.sydney, 1, products=())
    task_id = app.run_software_install(story.larry, [c], SERVER, pid)
    assert app.task(story.larry, task_id).results[c].state is TargetState.SUCCEEDED
    [product] = app.computer(story.larry, c).products
    assert (product.product, product.public_id, product.activated) == (SERVER, pid, True)
    assert app.license(story.larry, pid).used_units == 1


def test_r21_activation_of_a_product_not_installed_is_bad_input(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    [c] = add_computers(app, story.sydney, 1, products=(SERVER,))
    refused(app, InvalidInput, lambda: app.run_product_activation(story.larry, pid, [c]),
            f"has no '{PRODUCT}' installed")
    refused(app, InvalidInput, lambda: app.run_product_activation(story.larry, pid, []),
            "at least one target computer")


# -- R22 installer -----------------------------------------------------------------------


def test_r22_installer_carries_the_key_only_in_its_configuration(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    key = vendor.key_of(pid)
    before = app._core.recorder.max_notification_id()
    installer = app.installer_license(story.larry, pid)
    assert app._core.recorder.max_notification_id() == before
    assert installer.configuration()["license_key"] == key
    assert key not in repr(installer) and key not in str(installer.key)
    assert key[-4:] in str(installer.key)
    app.grant(story.admin, story.makio, story.sydney, Permission.READ)
    refused(app, PermissionDenied, lambda: app.installer_license(story.makio, pid), "needs USE")
    refused(app, NotFound, lambda: app.installer_license(story.john, pid), "not found")


# -- R23 overuse ---------------------------------------------------------------------------

CEILINGS = {
    OverusePolicy.NO_OVERUSE: 10,
    OverusePolicy.ALLOW_1_25X: 12,
    OverusePolicy.ALLOW_1_5X: 15,
    OverusePolicy.ALLOW_2X: 20,
    OverusePolicy.ALWAYS_ALLOW: None,
}


def test_r23_ceilings_use_exact_integer_arithmetic() -> None:
    assert [OverusePolicy.ALLOW_1_25X.ceiling(u) for u in (1, 3, 4, 7, 10)] == [1, 3, 5, 8, 12]
    assert [OverusePolicy.ALLOW_1_5X.ceiling(u) for u in (1, 3, 10)] == [1, 4, 15]
    assert OverusePolicy.ALLOW_2X.ceiling(7) == 14
    assert OverusePolicy.NO_OVERUSE.ceiling(7) == 7
    assert OverusePolicy.ALWAYS_ALLOW.ceiling(7) is None


@pytest.mark.parametrize("policy", list(OverusePolicy), ids=lambda p: p.value)
def test_r23_activations_stop_at_the_policy_ceiling(
    make_app: AppFactory, vendor: InMemoryActivationServer, policy: OverusePolicy
) -> None:
    app = make_app(policy=Policy(overuse=policy))
    admin = app.administrator
    pid = add_license(app, vendor, PID, units=10)
    computers = add_computers(app, app.all_group, 22)
    ceiling = CEILINGS[policy]
    taken = 0
    for c in computers:
        try:
            app.run_product_activation(admin, pid, [c])
            taken += 1
        except OveruseRefused as e:
            assert "overuse ceiling" in str(e) and str(ceiling) in str(e)
    assert taken == (22 if ceiling is None else ceiling)
    view = app.license(admin, pid)
    assert view.used_units == taken
    assert (StatusReason.OVERUSED in view.status.reasons) == (taken > 10)
    assert overuse_facts(app, pid) == (["LicenseOverused"] if taken > 10 else [])
    # re-activating a computer that holds a seat takes no new seat, even at the ceiling
    app.run_product_activation(admin, pid, [computers[0]])
    assert app.license(admin, pid).used_units == taken


def test_r23_a_task_beyond_the_ceiling_fails_those_targets_and_keeps_the_seats_taken(
    make_app: AppFactory, vendor: InMemoryActivationServer
) -> None:
    app = make_app()
    admin = app.administrator
    pid = add_license(app, vendor, PID, units=3)
    computers = add_computers(app, app.all_group, 5)
    app.run_product_activation(admin, pid, computers[:1])
    task_id = app.run_product_activation(admin, pid, computers)
    results = app.task(admin, task_id).results
    states = [results[c].state for c in computers]
    assert states == [TargetState.SUCCEEDED] * 3 + [TargetState.FAILED] * 2
    assert "overuse ceiling" in (results[computers[4]].reason or "")
    assert app.license(admin, pid).used_units == 3
    before = app._core.recorder.max_notification_id()
    with pytest.raises(OveruseRefused):
        app.run_product_activation(admin, pid, computers[3:])
    assert app._core.recorder.max_notification_id() == before


def test_r23_overuse_is_recorded_once_per_crossing_and_facts_alternate(
    make_app: AppFactory, vendor: InMemoryActivationServer
) -> None:
    app = make_app(policy=Policy(overuse=OverusePolicy.ALLOW_2X))
    admin = app.administrator
    pid = add_license(app, vendor, PID, units=2)
    computers = add_computers(app, app.all_group, 4)
    app.run_product_activation(admin, pid, computers[:2])
    assert overuse_facts(app, pid) == []
    app.run_product_activation(admin, pid, computers[2:3])
    app.run_product_activation(admin, pid, computers[3:4])
    assert overuse_facts(app, pid) == ["LicenseOverused"]
    app.deactivate_products(admin, computers[3:4])
    assert overuse_facts(app, pid) == ["LicenseOverused"]
    app.deactivate_products(admin, computers[2:3])
    assert overuse_facts(app, pid) == ["LicenseOverused", "LicenseBackWithinUnits"]
    app.run_product_activation(admin, pid, computers[2:3])
    assert overuse_facts(app, pid) == ["LicenseOverused", "LicenseBackWithinUnits"] * 1 + [
        "LicenseOverused"
    ]


def test_r23_usage_the_vendor_reports_counts_for_overuse_and_the_ceiling(
    make_app: AppFactory, vendor: InMemoryActivationServer
) -> None:
    app = make_app()
    admin = app.administrator
    pid = add_license(app, vendor, PID, units=5)
    [c] = add_computers(app, app.all_group, 1)
    vendor.report_usage(pid, 5)
    app.synchronize()
    assert app.license(admin, pid).used_units == 5
    refused(app, OveruseRefused, lambda: app.run_product_activation(admin, pid, [c]),
            "5 of 5 seats")
    vendor.report_usage(pid, 7)
    app.synchronize()
    app.synchronize()
    assert overuse_facts(app, pid) == ["LicenseOverused"]
    vendor.report_usage(pid, 3)
    app.synchronize()
    assert overuse_facts(app, pid) == ["LicenseOverused", "LicenseBackWithinUnits"]
    app.run_product_activation(admin, pid, [c])
    assert app.license(admin, pid).used_units == 3  # the vendor's report already counts more


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_r21_task_ids_are_random_uuid4_and_a_forked_child_never_repeats_them() -> None:
    """Task ids come from a pool of OS randomness fetched 256 at a time; a
    forked child must not hand out the ids its parent still holds."""
    ids = [TaskId.random() for _ in range(1_000)]
    assert len(set(ids)) == len(ids)
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    assert all(uuid.UUID(str(i)) == i for i in ids)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, ",".join(str(TaskId.random()) for _ in range(300)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        theirs = set(pipe.read().split(","))
    ours = {str(TaskId.random()) for _ in range(300)}
    assert len(theirs) == 300 and not theirs & ours
