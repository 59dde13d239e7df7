"""The Directory decider: static groups, users and permission sets (R10–R12).

One aggregate holds the whole directory so that names stay unique and a grant
is checked against the groups as they are, under one optimistic-concurrency
version. Directories are small (groups and users, not licenses).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import attrs

from .errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied
from .events import (
    DirectoryInitialised,
    DomainEvent,
    Emitter,
    GroupCreated,
    PermissionGranted,
    PermissionRevoked,
    UserCreated,
    user_actor,
)
from .evolving import replace
from .ids import DIRECTORY_ID, GroupId, UserId
from .values import Permission, check_name, name_key

ALL_GROUP_NAME = "All"
ADMINISTRATOR_NAME = "Administrator"


@attrs.frozen
class Group:
    name: str
    parent: GroupId | None


@attrs.frozen
class User:
    name: str
    home_group: GroupId


@attrs.frozen
class DirectoryState:
    version: int = 0
    all_group: GroupId | None = None
    administrator: UserId | None = None
    console_token: str = ""
    groups: Mapping[GroupId, Group] = attrs.field(factory=dict)
    users: Mapping[UserId, User] = attrs.field(factory=dict)
    grants: Mapping[UserId, Mapping[GroupId, Permission]] = attrs.field(factory=dict)

    @property
    def initialised(self) -> bool:
        return self.all_group is not None

    # -- queries used by every authorisation ---------------------------------

    def ancestors(self, group: GroupId) -> list[GroupId]:
        """The group itself, then its parent, up to All."""
        chain = []
        current: GroupId | None = group
        while current is not None:
            chain.append(current)
            current = self.groups[current].parent if current in self.groups else None
        return chain

    def permission(self, user: UserId, group: GroupId) -> Permission | None:
        """R11: the best level granted on the group or any group above it."""
        user_grants = self.grants.get(user)
        if not user_grants:
            return None
        best: Permission | None = None
        for g in self.ancestors(group):
            p = user_grants.get(g)
            if p is not None and (best is None or p > best):
                best = p
        return best

    def can(self, user: UserId, group: GroupId, needed: Permission) -> bool:
        p = self.permission(user, group)
        return p is not None and p >= needed

    def is_administrator(self, user: UserId) -> bool:
        """R12: home group All and WRITE on licenses in All."""
        u = self.users.get(user)
        return (
            u is not None
            and self.all_group is not None
            and u.home_group == self.all_group
            and self.can(user, self.all_group, Permission.WRITE)
        )

    def visible_groups(self, user: UserId) -> frozenset[GroupId]:
        """Every group where the user has at least READ (grants cover subgroups)."""
        granted = self.grants.get(user)
        if not granted:
            return frozenset()
        children: dict[GroupId | None, list[GroupId]] = {}
        for gid, g in self.groups.items():
            children.setdefault(g.parent, []).append(gid)
        seen: set[GroupId] = set()
        stack = list(granted)
        while stack:
            gid = stack.pop()
            if gid in seen:
                continue
            seen.add(gid)
            stack.extend(children.get(gid, ()))
        return frozenset(seen)

    def subgroups(self, group: GroupId) -> frozenset[GroupId]:
        """The group and all groups below it."""
        children: dict[GroupId | None, list[GroupId]] = {}
        for gid, g in self.groups.items():
            children.setdefault(g.parent, []).append(gid)
        seen: set[GroupId] = set()
        stack = [group]
        while stack:
            gid = stack.pop()
            if gid not in seen:
                seen.add(gid)
                stack.extend(children.get(gid, ()))
        return frozenset(seen)

    def user_named(self, name: str) -> UserId | None:
        key = name_key(name)
        for uid, u in self.users.items():
            if name_key(u.name) == key:
                return uid
        return None

    def group_named(self, name: str) -> GroupId | None:
        key = name_key(name)
        for gid, g in self.groups.items():
            if name_key(g.name) == key:
                return gid
        return None


def initial() -> DirectoryState:
    return DirectoryState()


def evolve(state: DirectoryState, event: DomainEvent) -> DirectoryState:
    """Total and pure: history is fact, so nothing is validated here."""
    v = event.originator_version
    if isinstance(event, DirectoryInitialised):
        return DirectoryState(
            version=v,
            all_group=event.all_group,
            administrator=event.administrator,
            console_token=event.console_token,
            groups={event.all_group: Group(ALL_GROUP_NAME, None)},
            users={event.administrator: User(event.administrator_name, event.all_group)},
            grants={event.administrator: {event.all_group: Permission.WRITE}},
        )
    if isinstance(event, GroupCreated):
        return replace(
            state, version=v, groups={**state.groups, event.group: Group(event.name, event.parent)}
        )
    if isinstance(event, UserCreated):
        return replace(
            state, version=v, users={**state.users, event.user: User(event.name, event.home_group)}
        )
    if isinstance(event, PermissionGranted):
        mine = dict(state.grants.get(event.user, {}))
        mine[event.group] = event.permission
        return replace(state, version=v, grants={**state.grants, event.user: mine})
    if isinstance(event, PermissionRevoked):
        mine = dict(state.grants.get(event.user, {}))
        mine.pop(event.group, None)
        return replace(state, version=v, grants={**state.grants, event.user: mine})
    return replace(state, version=v)


# -- decisions --------------------------------------------------------------------


def require_user(state: DirectoryState, user: object) -> UserId:
    uid = user if isinstance(user, UserId) else UserId(user)
    if uid not in state.users:
        raise NotFound("user", uid)
    return uid


def require_group(state: DirectoryState, group: object) -> GroupId:
    gid = group if isinstance(group, GroupId) else GroupId(group)
    if gid not in state.groups:
        raise NotFound("static group", gid)
    return gid


def require_administrator(state: DirectoryState, actor: UserId, doing: str) -> None:
    require_user(state, actor)
    if not state.is_administrator(actor):
        raise PermissionDenied(
            f"{doing} needs an administrator: home group All and WRITE permission "
            "on licenses in All"
        )


def initialise(
    state: DirectoryState,
    *,
    now: datetime,
    console_token: str,
    all_group: GroupId,
    administrator: UserId,
) -> list[DomainEvent]:
    if state.initialised:
        return []
    emit = Emitter(DIRECTORY_ID, state.version, now, "system")
    emit(
        DirectoryInitialised,
        all_group=all_group,
        administrator=administrator,
        administrator_name=ADMINISTRATOR_NAME,
        console_token=console_token,
    )
    return emit.events


def create_group(
    state: DirectoryState, actor: UserId, name: str, parent: GroupId | None, now: datetime
) -> tuple[GroupId, list[DomainEvent]]:
    name = check_name("static group", name)
    if name.casefold() == ALL_GROUP_NAME.casefold():
        # R10/R33: ``All`` is the root; a second one would make "the group All"
        # mean two groups (All/All)
        raise InvalidInput(f"{ALL_GROUP_NAME!r} is the root group's name; choose another name")
    require_administrator(state, actor, "creating a static group")
    assert state.all_group is not None
    parent_id = state.all_group if parent is None else require_group(state, parent)
    for g in state.groups.values():
        if g.parent == parent_id and g.name.casefold() == name.casefold():
            raise AlreadyExists(
                f"a static group named {name!r} already exists under "
                f"{state.groups[parent_id].name!r}"
            )
    group = GroupId.derive(f"{parent_id}/{name.casefold()}")
    emit = Emitter(DIRECTORY_ID, state.version, now, user_actor(actor))
    emit(GroupCreated, group=group, name=name, parent=parent_id)
    return group, emit.events


def create_user(
    state: DirectoryState, actor: UserId, name: str, home_group: GroupId, now: datetime
) -> tuple[UserId, list[DomainEvent]]:
    name = check_name("user", name)
    require_administrator(state, actor, "creating a user")
    home = require_group(state, home_group)
    if state.user_named(name) is not None:
        raise AlreadyExists(f"a user named {name!r} already exists")
    user = UserId.derive(name.casefold())
    emit = Emitter(DIRECTORY_ID, state.version, now, user_actor(actor))
    emit(UserCreated, user=user, name=name, home_group=home)
    return user, emit.events


def grant(
    state: DirectoryState,
    actor: UserId,
    user: UserId,
    group: GroupId,
    permission: Permission,
    now: datetime,
) -> list[DomainEvent]:
    if not isinstance(permission, Permission):
        raise InvalidInput(
            f"{permission!r} is not a permission: use Permission.READ, USE or WRITE"
        )
    require_administrator(state, actor, "granting permissions")
    uid = require_user(state, user)
    gid = require_group(state, group)
    current = state.grants.get(uid, {}).get(gid)
    if current is not None and current >= permission:
        return []  # permission sets add up: a lower or equal grant changes nothing
    emit = Emitter(DIRECTORY_ID, state.version, now, user_actor(actor))
    emit(PermissionGranted, user=uid, group=gid, permission=permission)
    return emit.events


def revoke(
    state: DirectoryState, actor: UserId, user: UserId, group: GroupId, now: datetime
) -> list[DomainEvent]:
    """R11: take back the permission set granted to ``user`` on ``group``.

    Only what was granted on that very group: what the user holds there through
    a grant on a group above stays (revoke that one instead). Revoking nothing
    records nothing, as granting what is already held does.
    """
    require_administrator(state, actor, "revoking permissions")
    uid = require_user(state, user)
    gid = require_group(state, group)
    if gid not in state.grants.get(uid, {}):
        return []
    if uid == state.administrator and gid == state.all_group:
        raise PermissionDenied(
            "the Administrator's permission on All cannot be revoked: it is what lets "
            "someone manage this console"
        )
    emit = Emitter(DIRECTORY_ID, state.version, now, user_actor(actor))
    emit(PermissionRevoked, user=uid, group=gid)
    return emit.events
