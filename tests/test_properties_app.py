"""Application-level properties over random command sequences, on every store.

R30: the state rebuilt from the stored events equals the live state.
R11/R13/R14: no query ever shows a license or pool outside the actor's
visibility, computed here independently from the grants and the group tree;
refused commands raise the error R14 prescribes and record nothing.

Every example gets a store of its own (a fresh PostgreSQL schema, SQLite file
or in-memory recorder) so that examples are independent and shrink cleanly.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from esmc_licensing import (
    Adapters,
    AlreadyExists,
    InMemoryActivationServer,
    LicenseManagement,
    LicensingError,
    ManualClock,
    NotFound,
    Permission,
    PermissionDenied,
    PoolId,
    PublicId,
    UserId,
    seals,
)
from esmc_licensing.domain import (
    account,
    computer,
    directory,
    license,
    pool,
    saved_filters,
    tags,
    task,
)
from esmc_licensing.domain.directory import DirectoryState
from esmc_licensing.domain.errors import UnsupportedProduct
from esmc_licensing.domain.events import DomainEvent
from esmc_licensing.domain.filters import LicenseFilter
from esmc_licensing.domain.ids import GroupId
from esmc_licensing.domain.license import LicenseState
from esmc_licensing.domain.pool import PoolState
from esmc_licensing.domain.saved_filters import FiltersState
from esmc_licensing.domain.tags import TagsState
from esmc_licensing.domain.values import MANAGEABLE_PRODUCTS
from esmc_licensing.testing import stores
from esmc_licensing.testing.strategies import (
    AddKey,
    AdvanceClock,
    AssignTag,
    Command,
    CreateGroup,
    CreateTag,
    CreateUser,
    DeleteTag,
    Grant,
    MovePool,
    RemovePool,
    UnassignTag,
    World,
    commands,
    license_filters,
)

from .conftest import START


def _scaled(fraction: float) -> settings:
    """App-level examples as a fraction of the loaded profile's (ci: 25)."""
    return settings(max_examples=max(5, int(settings().max_examples * fraction)))


# -- one store per example ------------------------------------------------------------


@attrs.define
class Session:
    """Opens (and reopens) applications on one store, like conftest's ``make_app``."""

    env: dict[str, str]
    clock: ManualClock = attrs.field(factory=lambda: ManualClock(START))
    vendor: InMemoryActivationServer = attrs.field(init=False)
    opened: list[LicenseManagement] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.vendor = InMemoryActivationServer(clock=self.clock)

    def open(self) -> LicenseManagement:
        app = LicenseManagement(
            env=self.env, adapters=Adapters(activation_server=self.vendor, clock=self.clock)
        )
        if self.env["PERSISTENCE_MODULE"].endswith("popo") and self.opened:
            first = self.opened[0]
            app._core._share_store(first._core)
        self.opened.append(app)
        return app

    def close(self) -> None:
        for app in self.opened:
            app.close()


@pytest.fixture
def sessions(store_env: dict[str, str], tmp_path: Path) -> Callable[[], Any]:
    """A context manager giving each Hypothesis example a fresh store of this kind."""
    module = store_env["PERSISTENCE_MODULE"]

    @contextmanager
    def fresh() -> Iterator[Session]:
        if module.endswith("postgres"):
            with stores.postgres_schema() as schema:
                session = Session(stores.postgres_env(schema))
                try:
                    yield session
                finally:
                    session.close()
            return
        if module.endswith("sqlite"):
            env = stores.sqlite_env(tmp_path / f"{uuid.uuid4().hex}.db")
        else:
            env = stores.memory_env()
        session = Session(env)
        try:
            yield session
        finally:
            session.close()

    return fresh


# -- R30: rebuilt state equals live state -------------------------------------------------


def _fold_like(state: Any, events: list[DomainEvent]) -> Any:
    """Fold an aggregate's stored events from the initial state of the same kind."""
    fold: tuple[Any, Callable[[Any, DomainEvent], Any]]
    if isinstance(state, DirectoryState):
        fold = directory.initial(), directory.evolve
    elif isinstance(state, TagsState):
        fold = tags.initial(), tags.evolve
    elif isinstance(state, LicenseState):
        fold = license.initial(state.public_id), license.evolve
    elif isinstance(state, PoolState):
        fold = pool.initial(state.pool_id), pool.evolve
    elif isinstance(state, FiltersState):
        fold = saved_filters.initial(state.user), saved_filters.evolve
    # The command side caches every aggregate it loads, including ones it only
    # looked at before they existed (their initial state, fed by the log since).
    elif isinstance(state, seals.SealState):
        fold = seals.initial(), seals.evolve
    elif isinstance(state, computer.ComputerState):
        fold = computer.initial(state.computer_id), computer.evolve
    elif isinstance(state, task.TaskState):
        fold = task.initial(state.task_id), task.evolve
    elif isinstance(state, account.AccountState):
        fold = account.initial(state.account_id), account.evolve
    else:  # pragma: no cover - a new aggregate kind: teach this test about it
        raise AssertionError(f"unknown aggregate state {type(state).__name__}")
    current, evolve = fold
    for e in events:
        current = evolve(current, e)
    return current


def _everything_seen_by(app: LicenseManagement, user: UserId, world: World) -> dict[str, Any]:
    def attempt(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except NotFound as e:
            return ("NotFound", str(e))

    return {
        "licenses": app.licenses(user),
        "pools": app.pools(user),
        "license": [attempt(lambda p=p: app.license(user, p)) for p in world.licenses],
        "history": [attempt(lambda p=p: app.history(user, p)) for p in world.licenses],
        "pool history": [attempt(lambda p=p: app.history(user, p)) for p in world.pools],
    }


@_scaled(0.8)
@given(sequence=commands(max_size=25))
def test_r30_rebuilt_state_equals_live_state(sessions: Any, sequence: list[Command]) -> None:
    with sessions() as session:
        live = session.open()
        world = World(live, session.vendor)
        world.run_all(sequence)

        rebuilt = session.open()
        for user in world.users:
            assert _everything_seen_by(rebuilt, user, world) == _everything_seen_by(
                live, user, world
            )
        assert rebuilt.position == live.position
        assert rebuilt._core._directory() == live._core._directory()
        for key, state in list(live._core._states.items()):
            aggregate_id = uuid.UUID(int=key)
            stored = list(rebuilt._core.events.get(aggregate_id))
            assert _fold_like(state, stored) == state, aggregate_id


@_scaled(0.6)
@given(
    sequence=commands(max_size=25),
    filters=st.lists(st.none() | license_filters(), min_size=1, max_size=3),
)
def test_r30_kept_answers_brought_up_to_date_equal_answers_made_afresh(
    sessions: Any, sequence: list[Command], filters: list[LicenseFilter | None]
) -> None:
    """An application keeps its license lists and, after commands, makes again
    only the licenses whose rows or pools changed: always what a fresh query
    of the same views answers."""
    with sessions() as session:
        live = session.open()
        other = session.open()
        world = World(live, session.vendor)
        for command in sequence:
            with contextlib.suppress(LicensingError):
                world.run(command)
            for user in world.users:
                for f in filters:
                    kept = live.licenses(user, f)
                    other.__dict__.pop("_answers", None)
                    other.__dict__.pop("_made_views", None)
                    assert kept == other.licenses(user, f)


# -- R11/R13/R14: visibility, computed independently ---------------------------------------


@attrs.define
class PoolRecord:
    pool_id: PoolId | None
    name: str
    group: GroupId
    alive: bool


@attrs.define
class Model:
    """What the rules say should exist and who may see it, kept apart from the library."""

    admin: UserId
    all_group: GroupId
    groups: dict[GroupId, tuple[str, GroupId | None]] = attrs.field(factory=dict)
    users: dict[UserId, tuple[str, GroupId]] = attrs.field(factory=dict)
    grants: dict[UserId, dict[GroupId, Permission]] = attrs.field(factory=dict)
    pools: dict[str, PoolRecord] = attrs.field(factory=dict)  # by owner key
    licenses: dict[PublicId, tuple[str, bool]] = attrs.field(factory=dict)  # key, alive
    tags: dict[str, tuple[str, set[str]]] = attrs.field(factory=dict)  # casefold -> name, targets

    def __attrs_post_init__(self) -> None:
        self.groups[self.all_group] = ("All", None)
        self.users[self.admin] = ("Administrator", self.all_group)
        self.grants[self.admin] = {self.all_group: Permission.WRITE}

    # -- R10/R11 -----------------------------------------------------------------
    def covered(self, user: UserId) -> set[GroupId]:
        out: set[GroupId] = set()
        for granted in self.grants.get(user, {}):
            for g in self.groups:
                chain, cur = [], g
                while cur is not None:
                    chain.append(cur)
                    cur = self.groups[cur][1]
                if granted in chain:
                    out.add(g)
        return out

    def level(self, user: UserId, group: GroupId) -> Permission | None:
        best = None
        cur: GroupId | None = group
        while cur is not None:
            p = self.grants.get(user, {}).get(cur)
            if p is not None and (best is None or p > best):
                best = p
            cur = self.groups[cur][1]
        return best

    def is_admin(self, user: UserId) -> bool:
        return (
            self.users[user][1] == self.all_group
            and self.level(user, self.all_group) == Permission.WRITE
        )

    def pool_of_id(self, pool_id: PoolId) -> tuple[str, PoolRecord]:
        [(key, rec)] = [(k, r) for k, r in self.pools.items() if r.pool_id == pool_id]
        return key, rec

    def visible_pids(self, user: UserId) -> set[PublicId]:
        seen = self.covered(user)
        return {
            pid
            for pid, (key, alive) in self.licenses.items()
            if alive and self.pools[key].group in seen
        }

    def visible_pools(self, user: UserId) -> set[PoolId | None]:
        seen = self.covered(user)
        return {r.pool_id for r in self.pools.values() if r.alive and r.group in seen}

    def tags_on(self, target: str) -> set[str]:
        return {name for name, targets in self.tags.values() if target in targets}


def _owner_key(pid: PublicId, owner: str) -> tuple[str, str]:
    owner = owner.strip()
    return (f"owner:{owner.casefold()}", owner) if owner else (f"license:{pid}", str(pid))


@attrs.frozen
class Refs:
    """A command's references resolved before it runs (the world grows after)."""

    actor: UserId | None = None
    user: UserId | None = None
    group: GroupId | None = None
    pool: PoolId | None = None
    target: PoolId | PublicId | None = None


def _resolve(world: World, cmd: Command) -> Refs:
    if isinstance(cmd, AdvanceClock):
        return Refs()
    actor = world.actor(cmd)
    if isinstance(cmd, CreateGroup):
        return Refs(actor, group=world.group(cmd.parent))
    if isinstance(cmd, CreateUser):
        return Refs(actor, group=world.group(cmd.home))
    if isinstance(cmd, Grant):
        return Refs(actor, user=world.user(cmd.user), group=world.group(cmd.group))
    if isinstance(cmd, MovePool):
        pool_id = world.pool(cmd.pool) if world.pools else None
        return Refs(actor, group=world.group(cmd.group), pool=pool_id)
    if isinstance(cmd, RemovePool):
        return Refs(actor, pool=world.pool(cmd.pool) if world.pools else None)
    if isinstance(cmd, AssignTag | UnassignTag):
        return Refs(actor, target=world.target(cmd))
    return Refs(actor)


def _expect(model: Model, world: World, cmd: Command, refs: Refs) -> type[LicensingError] | None:
    """The refusal R10-R14/R28 prescribe for this command now, or None if it must succeed."""
    if isinstance(cmd, AdvanceClock):
        return None
    actor = refs.actor
    assert actor is not None
    admin = model.is_admin(actor)
    if isinstance(cmd, CreateGroup):
        if not admin:
            return PermissionDenied
        clash = any(
            p == refs.group and n.casefold() == cmd.name.casefold()
            for n, p in model.groups.values()
        )
        return AlreadyExists if clash else None
    if isinstance(cmd, CreateUser):
        if not admin:
            return PermissionDenied
        clash = any(n.casefold() == cmd.name.casefold() for n, _ in model.users.values())
        return AlreadyExists if clash else None
    if isinstance(cmd, Grant):
        return None if admin else PermissionDenied
    if isinstance(cmd, AddKey):
        if not admin:
            return PermissionDenied
        product = (
            world.vendor.details_of(cmd.public_id).product
            if cmd.public_id in world.vendor.public_ids
            else cmd.product
        )
        return None if product in MANAGEABLE_PRODUCTS else UnsupportedProduct
    if isinstance(cmd, MovePool | RemovePool):
        if refs.pool is None:
            return None
        _, rec = model.pool_of_id(refs.pool)
        if not rec.alive or rec.group not in model.covered(actor):
            return NotFound
        return None if admin else PermissionDenied
    if isinstance(cmd, CreateTag):
        if not any(p >= Permission.WRITE for p in model.grants.get(actor, {}).values()):
            return PermissionDenied
        return AlreadyExists if cmd.name.casefold() in model.tags else None
    if isinstance(cmd, DeleteTag):
        if not admin:
            return PermissionDenied
        return None if cmd.name.casefold() in model.tags else NotFound
    target = refs.target
    if target is None:
        return None
    if isinstance(target, PoolId):
        _, rec = model.pool_of_id(target)
        alive, group = rec.alive, rec.group
    else:
        key, alive = model.licenses[target]
        group = model.pools[key].group
    if not alive or group not in model.covered(actor):
        return NotFound
    if (model.level(actor, group) or 0) < Permission.WRITE:
        return PermissionDenied
    return None if cmd.name.casefold() in model.tags else NotFound


def _apply(model: Model, world: World, cmd: Command, refs: Refs, result: object) -> None:
    """Record in the model what a successful command did."""
    if isinstance(cmd, CreateGroup):
        assert isinstance(result, GroupId) and refs.group is not None
        model.groups[result] = (cmd.name, refs.group)
    elif isinstance(cmd, CreateUser):
        assert isinstance(result, UserId) and refs.group is not None
        model.users[result] = (cmd.name, refs.group)
    elif isinstance(cmd, Grant):
        assert refs.user is not None and refs.group is not None
        mine = model.grants.setdefault(refs.user, {})
        mine[refs.group] = max(mine.get(refs.group, cmd.permission), cmd.permission)
    elif isinstance(cmd, AddKey):
        assert isinstance(result, PublicId)
        pid = result
        key, name = _owner_key(pid, world.vendor.details_of(pid).owner)
        if model.licenses.get(pid, ("", False))[1]:
            return  # already present: nothing recorded (R15)
        rec = model.pools.get(key)
        if rec is None or not rec.alive:
            pool_id = rec.pool_id if rec else None
            model.pools[key] = PoolRecord(pool_id, name, model.all_group, alive=True)
        model.licenses[pid] = (key, True)
        actual = world.app.license(world.app.administrator, pid).pool_id
        if model.pools[key].pool_id is None:
            assert actual not in {r.pool_id for r in model.pools.values()}
            model.pools[key].pool_id = actual
        assert model.pools[key].pool_id == actual  # one pool per owner (R5)
    elif isinstance(cmd, MovePool | RemovePool) and refs.pool is not None:
        key, rec = model.pool_of_id(refs.pool)
        if isinstance(cmd, MovePool):
            assert refs.group is not None
            rec.group = refs.group
            return
        rec.alive = False
        gone = {f"pool:{refs.pool}"}
        for pid, (k, _) in list(model.licenses.items()):
            if k == key:
                model.licenses[pid] = (k, False)
                gone.add(f"license:{pid}")
        for _, tagged in model.tags.values():
            tagged.difference_update(gone)
    elif isinstance(cmd, CreateTag):
        model.tags[cmd.name.casefold()] = (cmd.name, set())
    elif isinstance(cmd, DeleteTag):
        del model.tags[cmd.name.casefold()]
    elif isinstance(cmd, AssignTag | UnassignTag):
        target = refs.target
        if target is None:
            return
        name = f"pool:{target}" if isinstance(target, PoolId) else f"license:{target}"
        targets = model.tags[cmd.name.casefold()][1]
        if isinstance(cmd, AssignTag):
            targets.add(name)
        else:
            targets.discard(name)


NEVER_ADDED = PublicId("ZZZ-ZZZ-ZZZ")


def _check_visibility(model: Model, world: World, *, thorough: bool) -> None:
    app = world.app
    for user in world.users:
        seen_groups = model.covered(user)
        views = app.licenses(user)
        assert {v.public_id for v in views} == model.visible_pids(user), user
        for v in views:
            key, _ = model.licenses[v.public_id]
            assert v.group == model.pools[key].group
            assert v.pool_id == model.pools[key].pool_id
            assert v.tags == model.tags_on(f"license:{v.public_id}") | model.tags_on(
                f"pool:{v.pool_id}"
            )
        pool_views = app.pools(user)
        assert {p.pool_id for p in pool_views} == model.visible_pools(user), user
        assert all(p.group in seen_groups for p in pool_views)
        if not thorough:
            continue
        for pid in [*world.licenses, NEVER_ADDED]:
            if pid in model.visible_pids(user):
                assert app.license(user, pid).public_id == pid
            else:
                with pytest.raises(NotFound):
                    app.license(user, pid)
            # history stays visible to whoever could see it where it was last
            entry = model.licenses.get(pid)
            if entry is not None and model.pools[entry[0]].group in seen_groups:
                assert app.history(user, pid)
            else:
                with pytest.raises(NotFound):
                    app.history(user, pid)
        for pool_id in world.pools:
            _, rec = model.pool_of_id(pool_id)
            if rec.group in seen_groups:
                app.history(user, pool_id)
            else:
                with pytest.raises(NotFound):
                    app.history(user, pool_id)


def _log_end(app: LicenseManagement) -> int:
    return app._core.recorder.max_notification_id() or 0


@_scaled(1.0)
@given(sequence=commands(max_size=30))
def test_r14_no_query_returns_invisible_license(sessions: Any, sequence: list[Command]) -> None:
    with sessions() as session:
        app = session.open()
        world = World(app, session.vendor)
        model = Model(app.administrator, app.all_group)
        for cmd in sequence:
            refs = _resolve(world, cmd)
            expected = _expect(model, world, cmd, refs)
            before = _log_end(app)
            try:
                result = world.run(cmd)
            except LicensingError as e:
                assert expected is not None and type(e) is expected, (cmd, e)
                assert _log_end(app) == before, f"{cmd} was refused but recorded events"
                event(f"refused: {type(cmd).__name__} {type(e).__name__}")
                continue
            assert expected is None, f"{cmd} should have been refused with {expected.__name__}"
            event(f"succeeded: {type(cmd).__name__}")
            _apply(model, world, cmd, refs, result)
            _check_visibility(model, world, thorough=False)
        _check_visibility(model, world, thorough=True)
        # R28: the tag catalogue agrees (removal and deletion unassign everywhere)
        assert {n: set(t) for n, t in app._core._tags().tags.items()} == {
            name: targets for name, targets in model.tags.values()
        }
        non_admins = [u for u in world.users if not model.is_admin(u)]
        seeing = sum(bool(model.visible_pids(u)) for u in non_admins)
        event(f"non-admins seeing something: {seeing}")
        event(f"live licenses: {sum(alive for _, alive in model.licenses.values())}")
