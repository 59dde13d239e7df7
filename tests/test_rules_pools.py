"""Pools: R5 (one pool per owner, created in All), R6 (licenses are never split),
R7 as far as the core goes (licenses land in the pool's current group, a license
never leaves its pool), R13 (distribution by moving pools), R19 (removal)."""

from __future__ import annotations

import pytest

from esmc_licensing import (
    ConfirmationRequired,
    InvalidInput,
    LicenseManagement,
    NotFound,
    PermissionDenied,
)

from .conftest import Story, issue, pool_of, recorded, seen_by

# -- R5 pools --------------------------------------------------------------------


def test_r5_first_license_of_an_owner_creates_its_pool_in_all(
    app: LicenseManagement, vendor
) -> None:
    admin = app.administrator
    pid = app.add_license_key(admin, issue(vendor, "AAA-111-001", owner="Acme"))
    pools = app.pools(admin)
    assert len(pools) == 1
    assert pools[0].name == "Acme"
    assert pools[0].group == app.all_group
    assert pools[0].public_ids == (pid,)
    assert app.license(admin, pid).group == app.all_group


def test_r5_licenses_of_the_same_owner_share_one_pool(app: LicenseManagement, vendor) -> None:
    admin = app.administrator
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001", owner="Acme"))
    b = app.add_license_key(admin, issue(vendor, "AAA-111-002", owner="Acme"))
    c = app.add_license_key(admin, issue(vendor, "AAA-111-003", owner="Globex"))
    pools = {p.name: p for p in app.pools(admin)}
    assert set(pools) == {"Acme", "Globex"}
    assert pools["Acme"].public_ids == (a, b)
    assert pools["Globex"].public_ids == (c,)
    assert (
        app.license(admin, a).pool_id
        == app.license(admin, b).pool_id
        != app.license(admin, c).pool_id
    )


def test_r5_owner_names_differing_only_in_case_share_a_pool(app: LicenseManagement, vendor) -> None:
    admin = app.administrator
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001", owner="Acme"))
    b = app.add_license_key(admin, issue(vendor, "AAA-111-002", owner="ACME"))
    assert len(app.pools(admin)) == 1
    assert app.license(admin, a).pool_id == app.license(admin, b).pool_id


def test_r5_moving_a_pool_to_its_own_group_records_nothing(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    pid = app.add_license_key(admin, issue(vendor, "AAA-111-001"))
    pool_id = pool_of(app, pid)
    before = recorded(app)
    app.move_pools(admin, [pool_id], app.all_group)
    assert recorded(app) == before
    app.move_pools(admin, [pool_id], story.san_diego)
    moved = recorded(app)
    assert moved > before
    app.move_pools(admin, [pool_id], story.san_diego)
    assert recorded(app) == moved
    assert app.license(admin, pid).group == story.san_diego


def test_r5_new_license_of_an_owner_joins_the_pool_where_it_is_now(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    first = app.add_license_key(admin, issue(vendor, "AAA-111-001", owner="Acme"))
    app.move_pools(admin, [pool_of(app, first)], story.san_diego)
    second = app.add_license_key(admin, issue(vendor, "AAA-111-002", owner="Acme"))
    assert app.license(admin, second).group == story.san_diego
    assert app.license(admin, second).pool_id == pool_of(app, first)
    assert seen_by(app, story.john) == [first, second]


def test_r5_owner_pool_is_created_again_in_all_after_its_removal(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    key = issue(vendor, "AAA-111-001", owner="Acme")
    pid = app.add_license_key(admin, key)
    app.move_pools(admin, [pool_of(app, pid)], story.san_diego)
    app.remove_pools(admin, [pool_of(app, pid)], confirm=True)
    assert app.pools(admin) == []
    assert app.add_license_key(admin, key) == pid
    assert app.license(admin, pid).group == app.all_group
    assert [p.public_ids for p in app.pools(admin)] == [(pid,)]
    assert app.licenses(story.john) == []


# -- R6 not reducible ------------------------------------------------------------------


def test_r6_a_moved_pool_keeps_every_license_whole_in_one_group(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001", units=25))
    b = app.add_license_key(admin, issue(vendor, "AAA-111-002", units=7))
    app.move_pools(admin, [pool_of(app, a)], story.san_diego)
    admin_view = {v.public_id: v for v in app.licenses(admin)}
    john_view = {v.public_id: v for v in app.licenses(story.john)}
    assert admin_view == john_view
    assert {v.units for v in john_view.values()} == {25, 7}
    assert {v.group for v in john_view.values()} == {story.san_diego}
    assert app.licenses(story.larry) == [] and app.licenses(story.makio) == []
    assert b in john_view


def test_r6_the_console_offers_no_command_that_lowers_units(app: LicenseManagement) -> None:
    commands = {name for name in dir(app) if not name.startswith("_")}
    for forbidden in ("set_units", "reduce_units", "split_license", "change_units", "move_license"):
        assert forbidden not in commands


def test_r6_r7_a_single_license_cannot_be_moved_out_of_its_pool(
    story: Story, app: LicenseManagement, vendor
) -> None:
    """move_pools takes pools only: a Public ID in its place is refused, nothing recorded."""
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001"))
    app.add_license_key(admin, issue(vendor, "AAA-111-002"))
    before = recorded(app)
    with pytest.raises(InvalidInput):
        app.move_pools(admin, [a], story.san_diego)
    with pytest.raises(InvalidInput):
        app.move_pools(admin, str(a), story.san_diego)
    assert recorded(app) == before
    assert {v.group for v in app.licenses(admin)} == {app.all_group}


# -- R7 (core): licenses land where the pool is now ------------------------------


def test_r7_licenses_added_later_land_in_the_pools_current_group(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001", owner="Initech"))
    pool_id = pool_of(app, a)
    app.move_pools(admin, [pool_id], story.sydney)
    app.move_pools(admin, [pool_id], story.tokyo)
    b = app.add_license_key(admin, issue(vendor, "AAA-111-002", owner="Initech"))
    assert app.license(admin, b).group == story.tokyo
    assert seen_by(app, story.makio) == [a, b]
    assert app.licenses(story.larry) == []


# -- R13 distribution ----------------------------------------------------------------


def test_r13_branch_admin_sees_only_moved_pool(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001", owner="Acme"))
    b = app.add_license_key(admin, issue(vendor, "AAA-111-002", owner="Globex"))
    assert app.licenses(story.john) == []
    app.move_pools(admin, [pool_of(app, a)], story.san_diego)
    assert seen_by(app, story.john) == [a]
    assert [p.name for p in app.pools(story.john)] == ["Acme"]
    assert app.licenses(story.larry) == []
    assert app.pools(story.larry) == []
    assert seen_by(app, admin) == [a, b]


def test_r13_pool_moved_on_is_no_longer_seen_by_the_previous_branch(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001"))
    pool_id = pool_of(app, a)
    app.move_pools(admin, [pool_id], story.san_diego)
    assert seen_by(app, story.john) == [a]
    app.move_pools(admin, [pool_id], story.sydney)
    assert app.licenses(story.john) == []
    assert app.pools(story.john) == []
    with pytest.raises(NotFound):
        app.license(story.john, a)
    assert seen_by(app, story.larry) == [a]
    assert app.license(story.larry, a).group == story.sydney
    assert seen_by(app, admin) == [a]


def test_r13_r11_pool_moved_into_a_subgroup_is_seen_by_the_parent_branch(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    north = app.create_group(admin, "Sydney North", parent=story.sydney)
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001"))
    app.move_pools(admin, [pool_of(app, a)], north)
    assert app.license(story.larry, a).group == north
    assert app.licenses(story.john) == []


def test_r13_several_pools_move_in_one_command(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001", owner="Acme"))
    b = app.add_license_key(admin, issue(vendor, "AAA-111-002", owner="Globex"))
    app.move_pools(admin, [pool_of(app, a), pool_of(app, b)], story.tokyo)
    assert seen_by(app, story.makio) == [a, b]


def test_r13_branch_admin_cannot_move_a_pool_it_sees(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001"))
    pool_id = pool_of(app, a)
    app.move_pools(admin, [pool_id], story.san_diego)
    before = recorded(app)
    with pytest.raises(PermissionDenied, match="WRITE"):
        app.move_pools(story.john, [pool_id], story.sydney)
    assert recorded(app) == before
    assert app.license(admin, a).group == story.san_diego
    assert app.licenses(story.larry) == []


def test_r13_move_to_an_unknown_group_records_nothing(
    story: Story, app: LicenseManagement, vendor
) -> None:
    from esmc_licensing import GroupId

    a = app.add_license_key(story.admin, issue(vendor, "AAA-111-001"))
    before = recorded(app)
    with pytest.raises(NotFound, match="static group"):
        app.move_pools(story.admin, [pool_of(app, a)], GroupId.derive("Atlantis"))
    assert recorded(app) == before
    assert app.license(story.admin, a).group == app.all_group


def test_r13_one_invisible_pool_refuses_the_whole_move(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001", owner="Acme"))
    b = app.add_license_key(admin, issue(vendor, "AAA-111-002", owner="Globex"))
    app.move_pools(admin, [pool_of(app, a)], story.san_diego)
    before = recorded(app)
    with pytest.raises(NotFound):
        app.move_pools(story.john, [pool_of(app, a), pool_of(app, b)], story.san_diego)
    assert recorded(app) == before
    assert app.license(admin, b).group == app.all_group


# -- R19 removal ----------------------------------------------------------------------


def test_r19_removal_without_confirmation_records_nothing(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001"))
    pool_id = pool_of(app, a)
    before = recorded(app)
    pools_before = app.pools(admin)
    for confirm in (False, None, "yes", 1):
        with pytest.raises(ConfirmationRequired, match="confirm"):
            app.remove_pools(admin, [pool_id], confirm=confirm)  # type: ignore[arg-type]
    assert recorded(app) == before
    assert app.pools(admin) == pools_before
    assert seen_by(app, admin) == [a]


def test_r19_confirmed_removal_takes_pool_and_its_licenses_away(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001", owner="Acme"))
    b = app.add_license_key(admin, issue(vendor, "AAA-111-002", owner="Acme"))
    c = app.add_license_key(admin, issue(vendor, "AAA-111-003", owner="Globex"))
    app.move_pools(admin, [pool_of(app, a)], story.san_diego)
    app.remove_pools(admin, [pool_of(app, a)], confirm=True)
    assert seen_by(app, admin) == [c]
    assert [p.name for p in app.pools(admin)] == ["Globex"]
    assert app.licenses(story.john) == [] and app.pools(story.john) == []
    for gone in (a, b):
        with pytest.raises(NotFound):
            app.license(admin, gone)


def test_r19_removal_does_not_touch_the_vendor(
    story: Story, app: LicenseManagement, vendor
) -> None:
    """Removal deactivates nothing: the activation server is not even asked."""
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001"))
    calls = vendor.calls
    app.remove_pools(admin, [pool_of(app, a)], confirm=True)
    assert vendor.calls == calls
    assert vendor.details_of(a).suspended is False


def test_r19_removing_a_pool_by_a_branch_admin_is_denied(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001"))
    pool_id = pool_of(app, a)
    app.move_pools(admin, [pool_id], story.san_diego)
    before = recorded(app)
    with pytest.raises(PermissionDenied, match="WRITE"):
        app.remove_pools(story.john, [pool_id], confirm=True)
    with pytest.raises(NotFound):
        app.remove_pools(story.larry, [pool_id], confirm=True)
    assert recorded(app) == before
    assert seen_by(app, story.john) == [a]


def test_r19_removed_pool_is_not_found_for_move_or_second_removal(
    story: Story, app: LicenseManagement, vendor
) -> None:
    admin = story.admin
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001"))
    pool_id = pool_of(app, a)
    app.remove_pools(admin, [pool_id], confirm=True)
    before = recorded(app)
    with pytest.raises(NotFound, match="license pool"):
        app.remove_pools(admin, [pool_id], confirm=True)
    with pytest.raises(NotFound, match="license pool"):
        app.move_pools(admin, [pool_id], story.sydney)
    assert recorded(app) == before
