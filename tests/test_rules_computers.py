"""Computers, deactivation, removal and suspension (R9, R20, R24-R28), on every store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from esmc_licensing import (
    AdapterUnavailable,
    ComputerId,
    InMemoryActivationServer,
    InvalidInput,
    LicenseManagement,
    LicenseUnusable,
    ManualClock,
    NotFound,
    Permission,
    PermissionDenied,
    PublicId,
)
from esmc_licensing.domain.client_tasks import TaskKind
from esmc_licensing.projections.views import TargetState, Validity

from .conftest import PRODUCT, START, Story
from .seats_support import SERVER, add_computers, add_license, recorded, refused, topics

PID = "3AB-C12-D34"
PID2 = "3AB-C12-D35"


# -- R20 computers and seats -----------------------------------------------------------


def test_r20_a_registered_computer_shows_its_facts_and_check_ins(
    app: LicenseManagement, story: Story, clock: ManualClock
) -> None:
    cid = app.register_computer(
        story.admin, "reception-01", story.sydney, fingerprint="hw-1",
        products=[PRODUCT, SERVER],
    )
    view = app.computer(story.larry, cid)
    assert (view.name, view.group, view.fingerprint, view.last_connected) == (
        "reception-01", story.sydney, "hw-1", None,
    )
    assert [(p.product, p.public_id, p.activated) for p in view.products] == [
        (PRODUCT, None, False), (SERVER, None, False),
    ]
    clock.advance(timedelta(hours=2))
    app.computer_connected(cid)
    assert app.computer(story.larry, cid).last_connected == START + timedelta(hours=2)
    before = recorded(app)
    app.computer_connected(cid, at=START)  # an older check-in arriving late changes nothing
    assert recorded(app) == before
    refused(app, NotFound, lambda: app.computer(story.makio, cid), "computer .* not found")


def test_r20_registering_the_same_hardware_again_records_nothing(
    app: LicenseManagement, story: Story
) -> None:
    first = app.register_computer(story.admin, "pc", story.sydney, fingerprint="hw-1")
    before = recorded(app)
    assert app.register_computer(story.admin, "pc", story.sydney, fingerprint="hw-1") == first
    assert recorded(app) == before


def test_r20_reactivating_a_product_takes_no_new_seat_but_a_clone_does(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    original = app.register_computer(
        story.admin, "vm", story.sydney, fingerprint="hw-1", products=[PRODUCT]
    )
    app.run_product_activation(story.larry, pid, [original])
    app.run_product_activation(story.larry, pid, [original])
    assert app.license(story.larry, pid).used_units == 1
    assert topics(app, "SeatTaken") == 1
    clone = app.register_computer(
        story.admin, "vm", story.sydney, fingerprint="hw-1-clone", products=[PRODUCT]
    )
    assert clone != original
    app.run_product_activation(story.larry, pid, [clone])
    assert app.license(story.larry, pid).used_units == 2


def test_r20_activating_with_another_license_moves_the_seat(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    first = add_license(app, vendor, PID, group=story.sydney)
    second = add_license(app, vendor, PID2, group=story.sydney)
    [c] = add_computers(app, story.sydney, 1)
    app.run_product_activation(story.larry, first, [c])
    app.run_product_activation(story.larry, second, [c])
    assert app.license(story.larry, first).used_units == 0
    assert app.license(story.larry, second).used_units == 1
    assert app.computer(story.larry, c).products[0].public_id == second


def test_r9_a_computer_shows_each_products_license_validity(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    dated = add_license(app, vendor, PID, group=story.sydney, expires=date(2027, 6, 30))
    open_ended = add_license(
        app, vendor, PID2, group=story.sydney, product=SERVER, expires=None, subscription=True
    )
    [c] = add_computers(app, story.sydney, 1, products=(PRODUCT, SERVER))
    app.run_product_activation(story.larry, dated, [c])
    app.run_product_activation(story.larry, open_ended, [c])
    validity = {p.product: p.validity for p in app.computer(story.larry, c).products}
    assert validity[PRODUCT] == Validity(valid_until=date(2027, 6, 30), subscription=False)
    assert str(validity[PRODUCT]) == "valid until 2027-06-30"
    assert validity[SERVER] is not None and validity[SERVER].open_ended
    assert str(validity[SERVER]) == "open-ended subscription"


# -- R24 deactivation ---------------------------------------------------------------------


def test_r24_deactivation_goes_through_the_activation_server_and_frees_seats(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    computers = add_computers(app, story.sydney, 2)
    app.run_product_activation(story.larry, pid, computers)
    task_id = app.deactivate_products(story.larry, computers[:1])
    view = app.task(story.larry, task_id)
    assert view.kind is TaskKind.DEACTIVATION
    assert view.results[computers[0]].state is TargetState.SUCCEEDED
    device = app.computer(story.larry, computers[0]).fingerprint
    assert vendor.deactivations == [(pid, device, PRODUCT)]
    assert app.license(story.larry, pid).used_units == 1
    assert not app.computer(story.larry, computers[0]).products[0].activated


def test_r24_single_products_and_products_activated_outside_this_console(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    c = app.register_computer(
        story.admin, "file-server", story.sydney, fingerprint="hw-fs",
        products=[PRODUCT, SERVER], activated_outside=[SERVER],
    )
    app.run_product_activation(story.larry, pid, [c])
    outside = {p.product: p for p in app.computer(story.larry, c).products}[SERVER]
    assert (outside.activated, outside.public_id) == (True, None)
    app.deactivate_products(story.larry, [c], [SERVER])
    assert vendor.deactivations == [(None, "hw-fs", SERVER)]
    products = {p.product: p for p in app.computer(story.larry, c).products}
    assert products[PRODUCT].activated and not products[SERVER].activated
    assert app.license(story.larry, pid).used_units == 1


def _activated_in_sydney(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> tuple[PublicId, ComputerId]:
    """A license of Sydney and one computer there, activated with it by Larry."""
    pid = add_license(app, vendor, PID, group=story.sydney)
    [c] = add_computers(app, story.sydney, 1)
    app.run_product_activation(story.larry, pid, [c])
    return pid, c


def test_r24_a_failing_activation_server_records_nothing(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid, c = _activated_in_sydney(app, story, vendor)
    vendor.fail_next()
    refused(app, AdapterUnavailable, lambda: app.deactivate_products(story.larry, [c]),
            "unavailable")
    assert app.license(story.larry, pid).used_units == 1


def test_r24_bad_input_and_permissions(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    [c] = add_computers(app, story.tokyo, 1)
    refused(app, InvalidInput, lambda: app.deactivate_products(story.admin, []),
            "at least one target computer")
    refused(app, InvalidInput, lambda: app.deactivate_products(story.admin, [c], ["ESET Nothing"]),
            "has no 'ESET Nothing' installed")
    refused(app, InvalidInput, lambda: app.deactivate_products(story.admin, [c], []),
            "at least one product")
    refused(app, NotFound, lambda: app.deactivate_products(story.larry, [c]),
            "computer .* not found")
    refused(app, PermissionDenied, lambda: app.deactivate_products(story.makio, [c]),
            "needs USE permission on group 'Tokyo'")
    unknown = ComputerId("00000000-0000-4000-8000-000000000001")
    refused(app, NotFound, lambda: app.deactivate_products(story.admin, [unknown]),
            f"computer {unknown} not found")


# -- R25 removing a computer ---------------------------------------------------------------


def test_r25_removal_without_deactivation_keeps_the_seat_and_warns(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid, c = _activated_in_sydney(app, story, vendor)
    app.grant(story.admin, story.larry, story.sydney, Permission.WRITE)
    result = app.remove_computer(story.larry, c, deactivate=False)
    assert result.warning is not None
    assert "can no longer be freed" in result.warning and pid in result.warning
    assert app.license(story.larry, pid).used_units == 1
    assert vendor.deactivations == []
    refused(app, NotFound, lambda: app.computer(story.larry, c), "computer .* not found")
    refused(app, NotFound, lambda: app.deactivate_products(story.larry, [c]), "not found")
    history = [h.what for h in app.history(story.larry, c)]
    assert history[0] == "ComputerRegistered" and history[-1] == "ComputerRemoved"
    assert "SeatTaken" in history


def test_r25_removal_with_deactivation_frees_the_seat(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid, c = _activated_in_sydney(app, story, vendor)
    refused(app, PermissionDenied, lambda: app.remove_computer(story.larry, c, deactivate=True),
            "needs WRITE permission on group 'Sydney'")
    result = app.remove_computer(story.admin, c, deactivate=True)
    assert result.warning is None
    assert app.license(story.larry, pid).used_units == 0
    assert len(vendor.deactivations) == 1
    refused(app, InvalidInput, lambda: app.remove_computer(story.admin, c, deactivate="yes"),
            "deactivate must be True or False")


def test_r25_a_dry_run_removal_answers_and_refuses_as_the_removal_and_records_nothing(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid, c = _activated_in_sydney(app, story, vendor)
    refused(app, PermissionDenied,
            lambda: app.remove_computer(story.larry, c, deactivate=False, dry_run=True),
            "needs WRITE permission on group 'Sydney'")
    before = recorded(app)
    preview = app.remove_computer(story.admin, c, deactivate=False, dry_run=True)
    also = app.remove_computer(story.admin, c, deactivate=True, dry_run=True)
    assert recorded(app) == before and vendor.deactivations == []  # nothing asked or recorded
    assert app.computer(story.admin, c).name and app.license(story.admin, pid).used_units == 1
    assert also.warning is None and also.seats_left == ()
    refused(app, InvalidInput,
            lambda: app.remove_computer(story.admin, c, deactivate=False, dry_run="yes"),
            "dry_run must be True or False")
    assert app.remove_computer(story.admin, c, deactivate=False) == preview


# -- R26 delete not connecting computers ------------------------------------------------------


def test_r26_removes_computers_of_the_group_and_subgroups_not_connected_for_n_days(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer, clock: ManualClock
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    branch = app.create_group(story.admin, "Sydney North", parent=story.sydney)
    a = story.admin
    silent = app.register_computer(a, "silent", story.sydney, fingerprint="s", products=[PRODUCT])
    nested = app.register_computer(a, "nested", branch, fingerprint="n", products=[PRODUCT])
    alive = app.register_computer(a, "alive", story.sydney, fingerprint="a", products=[PRODUCT])
    elsewhere = app.register_computer(a, "tokyo", story.tokyo, fingerprint="t")
    unmanaged = app.register_computer(a, "printer-pc", story.sydney, managed=False)
    app.run_product_activation(a, pid, [silent, nested])
    clock.advance(timedelta(days=20))
    app.computer_connected(alive)
    app.computer_connected(nested, at=clock.now() - timedelta(days=1))
    clock.advance(timedelta(days=15))
    # nested connected 16 days ago, silent never (35 days since registration)
    task_id = app.delete_not_connecting_computers(a, story.sydney, 30, deactivate_license=False)
    assert set(app.task(a, task_id).results) == {silent}
    assert app.license(a, pid).used_units == 2  # not deactivated: the seat stays
    clock.advance(timedelta(days=30))
    task_id = app.delete_not_connecting_computers(
        a, story.sydney, 30, deactivate_license=True, remove_unmanaged=True
    )
    results = app.task(a, task_id).results
    assert set(results) == {nested, alive, unmanaged}
    assert all(r.state is TargetState.SUCCEEDED for r in results.values())
    assert app.license(a, pid).used_units == 1  # nested's seat freed, silent's still used
    assert [d[1] for d in vendor.deactivations] == ["n"]
    assert app.computer(a, elsewhere).name == "tokyo"
    for gone in (silent, nested, alive, unmanaged):
        refused(app, NotFound, lambda gone=gone: app.computer(a, gone), "not found")


def test_r26_unmanaged_computers_stay_unless_asked_and_permissions_hold(
    app: LicenseManagement, story: Story, clock: ManualClock
) -> None:
    unmanaged = app.register_computer(story.admin, "kiosk", story.sydney, managed=False)
    clock.advance(timedelta(days=90))
    task_id = app.delete_not_connecting_computers(
        story.admin, story.sydney, 30, deactivate_license=False
    )
    assert app.task(story.admin, task_id).results == {}
    assert app.computer(story.admin, unmanaged).managed is False
    refused(app, PermissionDenied, lambda: app.delete_not_connecting_computers(
        story.larry, story.sydney, 30, deactivate_license=False), "needs WRITE")
    refused(app, NotFound, lambda: app.delete_not_connecting_computers(
        story.larry, story.tokyo, 30, deactivate_license=False), "static group .* not found")
    refused(app, InvalidInput, lambda: app.delete_not_connecting_computers(
        story.admin, story.sydney, 0, deactivate_license=False), "days must be")


def test_r26_the_preview_names_what_the_command_removes_and_records_nothing(
    app: LicenseManagement, story: Story, clock: ManualClock
) -> None:
    a = story.admin
    branch = app.create_group(a, "Sydney North", parent=story.sydney)
    silent = app.register_computer(a, "silent", branch, fingerprint="s")
    alive = app.register_computer(a, "alive", story.sydney, fingerprint="a")
    kiosk = app.register_computer(a, "kiosk", story.sydney, managed=False)
    app.register_computer(a, "tokyo", story.tokyo, fingerprint="t")
    clock.advance(timedelta(days=40))
    app.computer_connected(alive)
    before = app.position
    preview = app.not_connecting_computers(a, story.sydney, 30)
    assert [c.name for c in preview] == ["silent"]
    assert [c.name for c in app.not_connecting_computers(
        a, story.sydney, 30, remove_unmanaged=True)] == ["kiosk", "silent"]
    assert app.position == before  # recorded nothing
    task_id = app.delete_not_connecting_computers(
        a, story.sydney, 30, deactivate_license=False, remove_unmanaged=True)
    assert set(app.task(a, task_id).results) == {silent, kiosk}
    refused(app, PermissionDenied, lambda: app.not_connecting_computers(
        story.larry, story.sydney, 30), "needs WRITE")
    refused(app, NotFound, lambda: app.not_connecting_computers(
        story.larry, story.tokyo, 30), "static group .* not found")
    refused(app, InvalidInput, lambda: app.not_connecting_computers(a, story.sydney, 0),
            "days must be")


# -- R27 suspension ---------------------------------------------------------------------------


def test_r27_suspension_deactivates_products_and_unsuspension_reactivates_them(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    computers = add_computers(app, story.sydney, 2)
    app.run_product_activation(story.larry, pid, computers)
    vendor.suspend(pid)
    app.synchronize()
    for c in computers:
        [p] = app.computer(story.larry, c).products
        assert (p.activated, p.suspended, p.public_id) == (False, True, pid)
    assert app.license(story.larry, pid).used_units == 2  # the seats stay with the license
    refused(app, LicenseUnusable, lambda: app.run_product_activation(story.larry, pid, computers),
            "suspended")
    vendor.unsuspend(pid)
    app.synchronize()
    for c in computers:
        [p] = app.computer(story.larry, c).products
        assert (p.activated, p.suspended, p.public_id) == (True, False, pid)
    whats = [h.what for h in app.history(story.larry, computers[0])]
    assert whats[-2:] == ["ProductDeactivated", "ProductActivated"]
    # the vendor's suspension and the products' deactivation were saved together
    app.synchronize()
    assert topics(app, "ProductDeactivated") == 2


# -- R28 tags on computers -------------------------------------------------------------------


def test_r28_computers_can_be_tagged_with_write_on_their_group(
    app: LicenseManagement, story: Story
) -> None:
    [c] = add_computers(app, story.san_diego, 1)
    app.create_tag(story.admin, "kiosk")
    app.assign_tag(story.john, c, "kiosk")
    assert app.computer(story.john, c).tags == frozenset({"kiosk"})
    refused(app, NotFound, lambda: app.assign_tag(story.larry, c, "kiosk"), "not found")


def test_r28_tags_filter_the_computer_list(app: LicenseManagement, story: Story) -> None:
    tagged, other = add_computers(app, story.san_diego, 2)
    app.create_tag(story.admin, "Kiosk")
    app.assign_tag(story.admin, tagged, "Kiosk")
    assert [v.computer_id for v in app.computers(story.john, tags=["kiosk"])] == [tagged]
    assert {v.computer_id for v in app.computers(story.john)} == {tagged, other}


# -- bad input ------------------------------------------------------------------------------


def test_r20_bad_registrations_are_refused_and_record_nothing(
    app: LicenseManagement, story: Story
) -> None:
    a = story.admin
    refused(app, InvalidInput, lambda: app.register_computer(a, "pc", story.sydney),
            "needs its hardware fingerprint")
    refused(app, InvalidInput, lambda: app.register_computer(a, "", story.sydney, fingerprint="x"),
            "cannot be empty")
    refused(app, InvalidInput, lambda: app.register_computer(
        a, "pc", story.sydney, fingerprint="x", products="ESET Endpoint Security"),
        "list of product names")
    refused(app, InvalidInput, lambda: app.register_computer(
        a, "pc", story.sydney, fingerprint="x", activated_outside=[SERVER]),
        "must be installed")
    refused(app, PermissionDenied, lambda: app.register_computer(
        story.larry, "pc", story.sydney, fingerprint="x"), "needs WRITE")
    refused(app, NotFound, lambda: app.register_computer(
        story.larry, "pc", story.tokyo, fingerprint="x"), "static group .* not found")
    refused(app, NotFound, lambda: app.computer_connected("00000000-0000-4000-8000-000000000002"),
            "computer .* not found")
    cid = app.register_computer(a, "pc", story.sydney, fingerprint="y")
    refused(app, InvalidInput, lambda: app.computer_connected(cid, at=datetime(2026, 1, 1)),
            "timezone-aware")


def test_r21_tasks_are_visible_to_their_creator_and_to_who_sees_their_groups(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    [c] = add_computers(app, story.sydney, 1)
    task_id = app.run_product_activation(story.larry, pid, [c])
    assert app.task(story.admin, task_id).task_id == task_id
    refused(app, NotFound, lambda: app.task(story.makio, task_id), "client task .* not found")
    assert START.tzinfo is UTC


def test_r21_a_task_is_found_by_the_start_of_its_id_among_the_tasks_one_may_see(
    app: LicenseManagement, story: Story, vendor: InMemoryActivationServer
) -> None:
    pid = add_license(app, vendor, PID, group=story.sydney)
    computers = add_computers(app, story.sydney, 3)
    tasks = [app.run_product_activation(story.larry, pid, [c]) for c in computers]
    for t in tasks:
        assert app.tasks_starting(story.admin, str(t)[:8]) == [t]
        assert app.tasks_starting(story.larry, str(t)[:13].upper()) == [t]
        assert app.tasks_starting(story.makio, str(t)[:8]) == []  # R21: not theirs to see
    assert app.tasks_starting(story.admin, str(tasks[0])[:4], limit=1) == [
        min((t for t in tasks if str(t)[:4] == str(tasks[0])[:4]), key=str)
    ]
    for bad in ("abc", "xyz1", "", "12 34"):
        refused(app, InvalidInput, lambda bad=bad: app.tasks_starting(story.admin, bad),
                "task id prefix")
    refused(app, InvalidInput, lambda: app.tasks_starting(story.admin, "abcd", limit=0), "limit")
