"""Access control: R10 (static groups, home groups), R11 (permission sets),
R12 (only administrators add and remove), R14 (denials leak nothing)."""

from __future__ import annotations

import re

import pytest

from esmc_licensing import (
    AlreadyExists,
    GroupId,
    LicenseManagement,
    NotFound,
    Permission,
    PermissionDenied,
    PoolId,
    PublicId,
    UserId,
)

from .conftest import Story, issue, pool_of, recorded, seen_by

NOT_FOUND_SHAPE = re.compile(r"^(license|license pool) \S+ not found$")


def distribute(app: LicenseManagement, vendor, story: Story) -> dict[str, PublicId]:
    """One license in each branch, one left in All."""
    admin = story.admin
    out = {}
    for pid, owner, group in (
        ("SDG-000-001", "San Diego Co", story.san_diego),
        ("SYD-000-001", "Sydney Co", story.sydney),
        ("TKY-000-001", "Tokyo Co", story.tokyo),
        ("ALL-000-001", "Head Office", None),
    ):
        out[owner] = app.add_license_key(admin, issue(vendor, pid, owner=owner))
        if group is not None:
            app.move_pools(admin, [pool_of(app, out[owner])], group)
    return out


# -- R10 static groups ----------------------------------------------------------------


def test_r10_administrator_lives_in_all_and_sees_everything(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    assert app.group_named("All") == app.all_group
    assert app.user_named("Administrator") == app.administrator
    assert seen_by(app, app.administrator) == sorted(lic.values())


def test_r10_groups_form_one_tree_under_all(story: Story, app: LicenseManagement, vendor) -> None:
    admin = story.admin
    north = app.create_group(admin, "North", parent=story.sydney)
    deeper = app.create_group(admin, "Harbour", parent=north)
    assert app.group_named("Harbour") == deeper
    a = app.add_license_key(admin, issue(vendor, "AAA-111-001"))
    app.move_pools(admin, [pool_of(app, a)], deeper)
    # Larry's USE on Sydney covers the whole branch below it.
    assert app.license(story.larry, a).group == deeper
    assert app.licenses(story.john) == []


def test_r10_same_group_name_twice_under_one_parent_is_refused(
    story: Story, app: LicenseManagement
) -> None:
    before = recorded(app)
    with pytest.raises(AlreadyExists, match=r"(?i)san diego"):
        app.create_group(story.admin, "san diego")
    assert recorded(app) == before
    # the same name under another parent is another group
    other = app.create_group(story.admin, "San Diego", parent=story.tokyo)
    assert other != story.san_diego


def test_r10_a_user_needs_an_existing_home_group(story: Story, app: LicenseManagement) -> None:
    before = recorded(app)
    with pytest.raises(NotFound, match="static group"):
        app.create_user(story.admin, "Nobody", GroupId.derive("Atlantis"))
    assert recorded(app) == before
    with pytest.raises(NotFound):
        app.user_named("Nobody")


def test_r10_user_names_are_unique(story: Story, app: LicenseManagement) -> None:
    before = recorded(app)
    with pytest.raises(AlreadyExists, match=r"(?i)john"):
        app.create_user(story.admin, "john", story.tokyo)
    assert recorded(app) == before


def test_r10_r12_only_an_administrator_shapes_the_directory(
    story: Story, app: LicenseManagement
) -> None:
    before = recorded(app)
    with pytest.raises(PermissionDenied, match="administrator"):
        app.create_group(story.john, "Branch of John")
    with pytest.raises(PermissionDenied, match="administrator"):
        app.create_user(story.john, "Johnny", story.san_diego)
    with pytest.raises(PermissionDenied, match="administrator"):
        app.grant(story.john, story.larry, story.san_diego, Permission.WRITE)
    assert recorded(app) == before
    assert app.licenses(story.larry) == []


# -- R11 permissions -----------------------------------------------------------------


def test_r11_each_level_sees_its_own_branch_only(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    assert seen_by(app, story.john) == [lic["San Diego Co"]]
    assert seen_by(app, story.larry) == [lic["Sydney Co"]]
    assert seen_by(app, story.makio) == [lic["Tokyo Co"]]
    assert [p.name for p in app.pools(story.makio)] == ["Tokyo Co"]


def test_r11_a_user_without_grants_sees_nothing(
    story: Story, app: LicenseManagement, vendor
) -> None:
    distribute(app, vendor, story)
    nobody = app.create_user(story.admin, "Nobody", story.tokyo)
    assert app.licenses(nobody) == []
    assert app.pools(nobody) == []


def test_r11_permission_sets_add_up(story: Story, app: LicenseManagement, vendor) -> None:
    lic = distribute(app, vendor, story)
    app.grant(story.admin, story.makio, story.sydney, Permission.READ)
    assert seen_by(app, story.makio) == sorted(
        [lic["Sydney Co"], lic["Tokyo Co"]]
    )


def test_r11_a_lower_grant_does_not_lower_a_higher_one(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    app.create_tag(story.admin, "Renewal")
    before = recorded(app)
    app.grant(story.admin, story.john, story.san_diego, Permission.READ)
    assert recorded(app) == before
    app.assign_tag(story.john, lic["San Diego Co"], "Renewal")
    assert "Renewal" in app.license(story.john, lic["San Diego Co"]).tags


def test_r11_read_on_all_sees_everything_but_writes_nothing(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    auditor = app.create_user(story.admin, "Auditor", app.all_group)
    app.grant(story.admin, auditor, app.all_group, Permission.READ)
    assert seen_by(app, auditor) == sorted(lic.values())
    app.create_tag(story.admin, "Audit")
    before = recorded(app)
    with pytest.raises(PermissionDenied, match="WRITE"):
        app.assign_tag(auditor, lic["Tokyo Co"], "Audit")
    assert recorded(app) == before


def test_r11_write_on_a_branch_lets_its_admin_tag_there(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    app.create_tag(story.admin, "Q3")
    pool_id = pool_of(app, lic["San Diego Co"])
    app.assign_tag(story.john, pool_id, "Q3")
    assert app.pools(story.john)[0].tags == frozenset({"Q3"})


# -- R12 adding and removing --------------------------------------------------------


def test_r12_branch_admin_cannot_add_a_license(
    story: Story, app: LicenseManagement, vendor
) -> None:
    key = issue(vendor, "AAA-111-001")
    before, calls = recorded(app), vendor.calls
    with pytest.raises(PermissionDenied, match=r"administrator.*WRITE"):
        app.add_license_key(story.john, key)
    assert recorded(app) == before
    assert vendor.calls == calls
    assert app.licenses(story.admin) == []


def test_r12_home_group_all_without_write_on_all_is_not_an_administrator(
    story: Story, app: LicenseManagement, vendor
) -> None:
    reader = app.create_user(story.admin, "Reader", app.all_group)
    app.grant(story.admin, reader, app.all_group, Permission.USE)
    before = recorded(app)
    with pytest.raises(PermissionDenied, match="WRITE"):
        app.add_license_key(reader, issue(vendor, "AAA-111-001"))
    assert recorded(app) == before


def test_r12_write_on_all_with_a_branch_home_is_not_an_administrator(
    story: Story, app: LicenseManagement, vendor
) -> None:
    app.grant(story.admin, story.john, app.all_group, Permission.WRITE)
    a = app.add_license_key(story.admin, issue(vendor, "AAA-111-001"))
    before = recorded(app)
    with pytest.raises(PermissionDenied, match="home group All"):
        app.add_license_key(story.john, issue(vendor, "AAA-111-002"))
    with pytest.raises(PermissionDenied, match="home group All"):
        app.remove_pools(story.john, [pool_of(app, a)], confirm=True)
    assert recorded(app) == before
    assert seen_by(app, story.john) == [a]


def test_r12_a_second_administrator_may_add_and_remove(
    story: Story, app: LicenseManagement, vendor
) -> None:
    deputy = app.create_user(story.admin, "Deputy", app.all_group)
    app.grant(story.admin, deputy, app.all_group, Permission.WRITE)
    a = app.add_license_key(deputy, issue(vendor, "AAA-111-001"))
    assert seen_by(app, story.admin) == [a]
    app.remove_pools(deputy, [pool_of(app, a)], confirm=True)
    assert app.licenses(story.admin) == []


# -- R14 denials -----------------------------------------------------------------------


def test_r14_license_outside_the_branch_is_not_found_like_a_missing_one(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    hidden, missing = lic["Sydney Co"], PublicId("ZZZ-999-999")
    with pytest.raises(NotFound) as outside:
        app.license(story.john, hidden)
    with pytest.raises(NotFound) as absent:
        app.license(story.john, missing)
    assert NOT_FOUND_SHAPE.match(str(outside.value))
    assert str(outside.value) == str(absent.value).replace(str(missing), str(hidden))
    assert type(outside.value) is type(absent.value)
    assert "Sydney" not in str(outside.value)


def test_r14_pool_outside_the_branch_is_not_found_like_a_missing_one(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    app.create_tag(story.admin, "Hot")
    hidden, missing = pool_of(app, lic["Sydney Co"]), PoolId.derive("no such pool")
    before = recorded(app)
    for act in (
        lambda p: app.assign_tag(story.john, p, "Hot"),
        lambda p: app.history(story.john, p),
        lambda p: app.move_pools(story.john, [p], story.san_diego),
        lambda p: app.remove_pools(story.john, [p], confirm=True),
        lambda p: app.remove_pools(story.john, [p], confirm=False),
    ):
        with pytest.raises(NotFound) as outside:
            act(hidden)
        with pytest.raises(NotFound) as absent:
            act(missing)
        assert NOT_FOUND_SHAPE.match(str(outside.value))
        assert str(outside.value) == str(absent.value).replace(str(missing), str(hidden))
    assert recorded(app) == before
    assert app.pools(story.larry)[0].tags == frozenset()


def test_r14_license_commands_outside_the_branch_are_not_found(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    app.create_tag(story.admin, "Hot")
    hidden, missing = lic["Tokyo Co"], "ZZZ-999-999"
    before = recorded(app)
    for act in (
        lambda p: app.assign_tag(story.larry, p, "Hot"),
        lambda p: app.unassign_tag(story.larry, p, "Hot"),
        lambda p: app.history(story.larry, p),
        lambda p: app.license(story.larry, p),
    ):
        with pytest.raises(NotFound) as outside:
            act(hidden)
        with pytest.raises(NotFound) as absent:
            act(missing)
        assert str(outside.value) == str(absent.value).replace(missing, hidden)
    assert recorded(app) == before


def test_r14_visible_but_too_low_level_is_permission_denied_naming_write(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    app.create_tag(story.admin, "Hot")
    before = recorded(app)
    # Makio has READ on Tokyo, Larry USE on Sydney: both see, neither may modify.
    for user, pid in ((story.makio, lic["Tokyo Co"]), (story.larry, lic["Sydney Co"])):
        for target in (pid, pool_of(app, pid)):
            with pytest.raises(PermissionDenied, match="WRITE") as denied:
                app.assign_tag(user, target, "Hot")
            assert "not found" not in str(denied.value)
        with pytest.raises(PermissionDenied, match="WRITE"):
            app.move_pools(user, [pool_of(app, pid)], story.san_diego)
    assert recorded(app) == before
    assert app.license(story.makio, lic["Tokyo Co"]).tags == frozenset()
    assert app.license(story.admin, lic["Tokyo Co"]).group == story.tokyo


def test_r14_listing_never_mentions_invisible_pools(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    listed = repr(app.licenses(story.makio)) + repr(app.pools(story.makio))
    for owner, pid in lic.items():
        if owner != "Tokyo Co":
            assert str(pid) not in listed
            assert owner not in listed
            assert str(pool_of(app, pid)) not in listed


def test_r14_history_past_an_object_moved_away_is_not_found(
    story: Story, app: LicenseManagement, vendor
) -> None:
    lic = distribute(app, vendor, story)
    pid = lic["San Diego Co"]
    assert app.history(story.john, pid)
    app.move_pools(story.admin, [pool_of(app, pid)], story.tokyo)
    with pytest.raises(NotFound):
        app.history(story.john, pid)
    with pytest.raises(NotFound):
        app.history(story.john, pool_of(app, pid))


def test_r14_unknown_actor_is_not_found(app: LicenseManagement) -> None:
    ghost = UserId.derive("ghost")
    before = recorded(app)
    with pytest.raises(NotFound, match="user"):
        app.licenses(ghost)
    with pytest.raises(NotFound, match="user"):
        app.create_tag(ghost, "Boo")
    assert recorded(app) == before
