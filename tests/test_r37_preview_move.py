"""R37: a move's impact previewed before it is made, recording nothing."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmc_licensing import (
    Adapters,
    InMemoryActivationServer,
    InMemoryAgents,
    LicenseManagement,
    ManualClock,
    NotFound,
    Permission,
    PermissionDenied,
)
from esmc_licensing.domain.ids import GroupId, PoolId, PublicId, UserId
from tests.conftest import PRODUCT, AppFactory, Story, branch_story, issue, pool_of, recorded


def visible(app: LicenseManagement) -> dict[UserId, set[PublicId]]:
    d = app._core._directory()
    return {u: {v.public_id for v in app.licenses(u)} for u in d.users}


def expected_impact(
    before: dict[UserId, set[PublicId]], after: dict[UserId, set[PublicId]]
) -> tuple[dict[UserId, frozenset[PublicId]], dict[UserId, frozenset[PublicId]]]:
    gains = {u: frozenset(after[u] - before[u]) for u in after if after[u] - before[u]}
    loses = {u: frozenset(before[u] - after[u]) for u in before if before[u] - after[u]}
    return gains, loses


def test_r37_preview_names_each_users_gains_and_losses_and_records_nothing(
    make_app: AppFactory, vendor: InMemoryActivationServer
) -> None:
    app = make_app()
    s: Story = branch_story(app)
    a = app.add_license_key(s.admin, issue(vendor, "AAA-AAA-AAA"))
    b = app.add_license_key(s.admin, issue(vendor, "BBB-BBB-BBB", owner="Beta"))
    app.move_pools(s.admin, [pool_of(app, b)], s.sydney)
    at = recorded(app)

    impact = app.preview_move(s.admin, [pool_of(app, a), pool_of(app, b)], s.san_diego)

    assert recorded(app) == at
    assert impact.gains == {s.john: frozenset({a, b})}
    assert impact.loses == {s.larry: frozenset({b})}
    assert impact.activations_outside == {}
    before = visible(app)
    app.move_pools(s.admin, [pool_of(app, a), pool_of(app, b)], s.san_diego)
    assert (impact.gains, impact.loses) == expected_impact(before, visible(app))


def test_r37_preview_names_computers_whose_activation_would_use_a_license_outside_their_group(
    make_app: AppFactory, vendor: InMemoryActivationServer
) -> None:
    app = make_app(agents=InMemoryAgents())
    s = branch_story(app)
    pid = app.add_license_key(s.admin, issue(vendor, "CCC-CCC-CCC"))
    in_sydney = app.register_computer(
        s.admin, "syd-1", s.sydney, fingerprint="hw-syd-1", products=[PRODUCT]
    )
    in_tokyo = app.register_computer(
        s.admin, "tok-1", s.tokyo, fingerprint="hw-tok-1", products=[PRODUCT]
    )
    app.run_product_activation(s.admin, pid, [in_sydney, in_tokyo])

    impact = app.preview_move(s.admin, [pool_of(app, pid)], s.sydney)

    # the Sydney computer stays under its license's group; the Tokyo one would not
    assert impact.activations_outside == {in_tokyo: frozenset({pid})}
    assert not impact.changes_nothing


def test_r37_preview_refuses_what_the_move_refuses(
    make_app: AppFactory, vendor: InMemoryActivationServer
) -> None:
    app = make_app()
    s = branch_story(app)
    pid = app.add_license_key(s.admin, issue(vendor, "DDD-DDD-DDD"))
    pool = pool_of(app, pid)
    app.move_pools(s.admin, [pool], s.san_diego)
    at = recorded(app)
    with pytest.raises(PermissionDenied):
        app.preview_move(s.john, [pool], s.sydney)
    with pytest.raises(NotFound):  # Larry cannot see the pool (R14)
        app.preview_move(s.larry, [pool], s.sydney)
    with pytest.raises(NotFound):
        app.preview_move(s.admin, [pool], GroupId.derive("no such group"))
    assert recorded(app) == at
    assert app.preview_move(s.admin, [pool], s.san_diego).changes_nothing


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, object]:
    groups = draw(st.integers(min_value=1, max_value=5))
    parents = [draw(st.integers(min_value=-1, max_value=i - 1)) for i in range(groups)]
    users = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=groups - 1),
                st.lists(
                    st.tuples(
                        st.integers(min_value=0, max_value=groups - 1),
                        st.sampled_from([Permission.READ, Permission.USE, Permission.WRITE]),
                    ),
                    max_size=3,
                ),
            ),
            max_size=4,
        )
    )
    pools = draw(st.lists(st.integers(min_value=-1, max_value=groups - 1), min_size=1, max_size=5))
    moved = draw(st.lists(st.integers(min_value=0, max_value=len(pools) - 1), min_size=1))
    to = draw(st.integers(min_value=-1, max_value=groups - 1))
    return {"parents": parents, "users": users, "pools": pools, "moved": moved, "to": to}


@settings(max_examples=40, deadline=None)
@given(world=worlds())
def test_r37_preview_equals_the_change_of_every_users_visible_set(world: dict) -> None:
    clock = ManualClock()
    vendor = InMemoryActivationServer(clock=clock)
    app = LicenseManagement(adapters=Adapters(activation_server=vendor, clock=clock))
    admin = app.administrator
    groups: list[GroupId] = []
    for i, parent in enumerate(world["parents"]):
        groups.append(app.create_group(admin, f"G{i}", None if parent < 0 else groups[parent]))

    def group(i: int) -> GroupId:
        return app.all_group if i < 0 else groups[i]

    for n, (home, grants) in enumerate(world["users"]):
        user = app.create_user(admin, f"U{n}", groups[home])
        for g, permission in grants:
            app.grant(admin, user, groups[g], permission)
    pools: list[PoolId] = []
    for n, g in enumerate(world["pools"]):
        pid = app.add_license_key(
            admin, issue(vendor, f"PPP-{n:03d}-AAA", owner=f"Owner {n}", expires=date(2027, 1, 1))
        )
        pools.append(pool_of(app, pid))
        if g >= 0:
            app.move_pools(admin, [pools[-1]], group(g))
    moved = [pools[i] for i in world["moved"]]
    at = recorded(app)

    impact = app.preview_move(admin, moved, group(world["to"]))

    assert recorded(app) == at
    before = visible(app)
    app.move_pools(admin, moved, group(world["to"]))
    assert (impact.gains, impact.loses) == expected_impact(before, visible(app))
