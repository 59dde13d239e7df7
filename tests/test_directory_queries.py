"""R10, R11, R14: groups, users and permissions as each user may see them; revoke."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmc_licensing import (
    LicenseManagement,
    NotFound,
    Permission,
    PermissionDenied,
)
from esmc_licensing.domain.ids import GroupId, UserId
from tests.conftest import AppFactory, branch_story, recorded


def test_r10_groups_are_listed_by_path_for_the_administrator(make_app: AppFactory) -> None:
    app = make_app()
    s = branch_story(app)
    lab = app.create_group(s.admin, "Lab", s.san_diego)
    groups = app.groups(s.admin)
    assert [g.path for g in groups] == [
        "All", "All/San Diego", "All/San Diego/Lab", "All/Sydney", "All/Tokyo"
    ]
    assert {g.group_id: g.parent for g in groups}[lab] == s.san_diego


def test_r14_a_branch_user_lists_only_the_groups_they_see(make_app: AppFactory) -> None:
    app = make_app()
    s = branch_story(app)
    app.create_group(s.admin, "Lab", s.san_diego)
    assert [g.path for g in app.groups(s.john)] == ["All/San Diego", "All/San Diego/Lab"]
    assert [g.name for g in app.groups(s.larry)] == ["Sydney"]


def test_r11_users_show_grants_and_effective_permissions_inherited_by_subgroups(
    make_app: AppFactory,
) -> None:
    app = make_app()
    s = branch_story(app)
    lab = app.create_group(s.admin, "Lab", s.san_diego)
    app.grant(s.admin, s.john, lab, Permission.READ)  # lower than what San Diego gives
    john = next(u for u in app.users(s.admin) if u.name == "John")
    assert john.grants == {s.san_diego: Permission.WRITE, lab: Permission.READ}
    assert john.effective == {s.san_diego: Permission.WRITE, lab: Permission.WRITE}
    assert john.home_group == s.san_diego


def test_r14_a_branch_user_lists_only_users_of_their_groups(make_app: AppFactory) -> None:
    app = make_app()
    s = branch_story(app)
    greta = app.create_user(s.admin, "Greta", s.san_diego)
    app.grant(s.admin, greta, s.sydney, Permission.READ)
    seen = {u.name: u for u in app.users(s.john)}
    assert set(seen) == {"Greta", "John"}
    # Greta's grant on Sydney is not John's business
    assert seen["Greta"].grants == {}
    assert {u.name for u in app.users(s.admin)} == {
        "Administrator", "Greta", "John", "Larry", "Makio"
    }


def test_r11_revoke_takes_back_a_grant_and_the_pools_it_showed(
    make_app: AppFactory,
) -> None:
    app = make_app()
    s = branch_story(app)
    assert [g.name for g in app.groups(s.larry)] == ["Sydney"]
    app.revoke(s.admin, s.larry, s.sydney)
    larry = next(u for u in app.users(s.admin) if u.name == "Larry")
    assert larry.grants == {} and larry.effective == {}
    assert app.licenses(s.larry) == []
    at = recorded(app)
    app.revoke(s.admin, s.larry, s.sydney)  # nothing left to revoke: records nothing
    assert recorded(app) == at


def test_r11_revoke_is_for_administrators_and_keeps_the_administrator(
    make_app: AppFactory,
) -> None:
    app = make_app()
    s = branch_story(app)
    at = recorded(app)
    with pytest.raises(PermissionDenied):
        app.revoke(s.john, s.larry, s.sydney)
    with pytest.raises(PermissionDenied, match="cannot be revoked"):
        app.revoke(s.admin, s.admin, app.all_group)
    with pytest.raises(NotFound):
        app.revoke(s.admin, UserId.derive("nobody"), s.sydney)
    with pytest.raises(NotFound):
        app.revoke(s.admin, s.larry, GroupId.derive("nowhere"))
    assert recorded(app) == at


def test_r28_the_tag_catalogue_is_shared(make_app: AppFactory) -> None:
    app = make_app()
    s = branch_story(app)
    app.create_tag(s.admin, "renewal")
    app.create_tag(s.admin, "Audit")
    assert app.tags(s.john) == app.tags(s.admin) == ["Audit", "renewal"]


@settings(max_examples=30, deadline=None)
@given(
    parents=st.lists(st.integers(min_value=-1, max_value=4), min_size=1, max_size=5),
    grants=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=4),
            st.sampled_from([Permission.READ, Permission.USE, Permission.WRITE]),
        ),
        max_size=5,
    ),
    revoked=st.lists(st.integers(min_value=0, max_value=4), max_size=3),
)
def test_r11_effective_permissions_are_what_the_library_enforces(
    parents: list[int],
    grants: list[tuple[int, Permission]],
    revoked: list[int],
) -> None:
    """A user's effective permissions are, for every group, the best one granted
    on it or on a group above it (computed here from the tree as built)."""
    app = LicenseManagement()
    admin = app.administrator
    groups: list[GroupId] = []
    parent_of: dict[int, int | None] = {}
    for i, parent in enumerate(parents):
        above = None if parent < 0 or parent >= i else parent
        parent_of[i] = above
        groups.append(app.create_group(admin, f"G{i}", None if above is None else groups[above]))
    user = app.create_user(admin, "U", groups[0])
    held: dict[int, Permission] = {}
    for g, permission in grants:
        i = g % len(groups)
        app.grant(admin, user, groups[i], permission)
        held[i] = max(permission, held.get(i, permission))
    for g in revoked:
        app.revoke(admin, user, groups[g % len(groups)])
        held.pop(g % len(groups), None)
    expected = {}
    for i in range(len(groups)):
        chain, j = [], i
        while j is not None:
            chain.append(j)
            j = parent_of[j]
        best = [held[j] for j in chain if j in held]
        if best:
            expected[groups[i]] = max(best)
    view = next(u for u in app.users(admin) if u.user_id == user)
    assert view.effective == expected
    assert view.grants == {groups[i]: p for i, p in held.items()}
