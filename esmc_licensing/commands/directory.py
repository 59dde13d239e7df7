"""Commands on static groups, users and permission sets (R10, R11)."""

from __future__ import annotations

import uuid
from datetime import datetime

from ..domain import directory
from ..domain import tags as catalogue
from ..domain.directory import DirectoryState
from ..domain.errors import NotFound
from ..domain.ids import (
    TAGS_ID,
    GroupId,
    UserId,
)
from ..domain.values import Permission, lookup_name
from ..handler import Handler
from ..projections.views import GroupView, UserView
from ..service import Decision


def _path(d: DirectoryState, group: GroupId) -> str:
    names = []
    current: GroupId | None = group
    while current is not None:
        g = d.groups[current]
        names.append(g.name)
        current = g.parent
    return "/".join(reversed(names))


def _effective(d: DirectoryState, user: UserId) -> dict[GroupId, Permission]:
    """What a user holds on each group they see: a grant covers the group's
    subgroups and sets add up (R11), as the library enforces it."""
    out: dict[GroupId, Permission] = {}
    for group in d.visible_groups(user):
        permission = d.permission(user, group)
        if permission is not None:
            out[group] = permission
    return out


class DirectoryCommands(Handler):
    # -- directory (R10, R11) ---------------------------------------------------

    def create_group(self, actor: UserId, name: str, parent: GroupId | None = None) -> GroupId:
        """A static group under ``parent`` (None: under All)."""
        uid = self._actor(actor)
        parent_id = None if parent is None else GroupId(parent)

        def decide() -> Decision[GroupId]:
            return directory.create_group(self._directory(), uid, name, parent_id, self._now())

        return self._execute(decide)

    def create_user(self, actor: UserId, name: str, home_group: GroupId) -> UserId:
        uid = self._actor(actor)
        home = GroupId(home_group)

        def decide() -> Decision[UserId]:
            return directory.create_user(self._directory(), uid, name, home, self._now())

        return self._execute(decide)

    def grant(self, actor: UserId, user: UserId, group: GroupId, permission: Permission) -> None:
        uid = self._actor(actor)
        target = UserId(user)
        gid = GroupId(group)

        def decide() -> Decision[None]:
            return None, directory.grant(
                self._directory(), uid, target, gid, permission, self._now()
            )

        self._execute(decide)

    def revoke(self, actor: UserId, user: UserId, group: GroupId) -> None:
        """R11: take back the permission set granted to ``user`` on ``group``
        (administrators only). What the user holds there through a grant on a
        group above stays; revoking what was never granted records nothing.
        Raises ``NotFound`` for an unknown user or group, ``PermissionDenied``
        for a non-administrator or for the Administrator's own grant on All."""
        uid = self._actor(actor)
        target = UserId(user)
        gid = GroupId(group)

        def decide() -> Decision[None]:
            return None, directory.revoke(self._directory(), uid, target, gid, self._now())

        self._execute(decide)

    # -- directory queries (R10, R11, R14) --------------------------------------------

    def _seen_groups(self, d: DirectoryState, uid: UserId) -> frozenset[GroupId]:
        """The groups a user may list: those they see (R11) and their home group."""
        if d.is_administrator(uid):
            return frozenset(d.groups)
        return d.visible_groups(uid) | {d.users[uid].home_group}

    def _directory_for(
        self, actor: UserId, as_of: datetime | int | None
    ) -> tuple[DirectoryState, UserId]:
        """The directory now (caught up with other processes) or as it was at
        ``as_of``, and the actor, who must exist in it."""
        if as_of is None:
            uid = self._actor(actor)
            self._refresh(views=False)
            d = self._directory()
        else:
            d = self._directory_as_of(as_of)
            uid = self._actor(actor, d)
        directory.require_user(d, uid)
        return d, uid

    def groups(
        self, actor: UserId, *, as_of: datetime | int | None = None
    ) -> list[GroupView]:
        """The static groups the actor sees and their own home group, by path;
        with ``as_of``, as they were then (R30).

        A path names the groups above too (``All/San Diego/Lab``): it is how a
        group is addressed, and the tree's shape above one's groups is not
        hidden (R14 hides pools, licenses and computers, not group names)."""
        d, uid = self._directory_for(actor, as_of)
        out = [
            GroupView(gid, d.groups[gid].name, d.groups[gid].parent, _path(d, gid))
            for gid in self._seen_groups(d, uid)
        ]
        return sorted(out, key=lambda g: g.path.casefold())

    def users(
        self, actor: UserId, *, as_of: datetime | int | None = None
    ) -> list[UserView]:
        """The users whose home group the actor sees (and the actor), by name,
        with their grants and effective permissions on the groups the actor
        sees (an administrator sees everything); with ``as_of``, as they were
        then (R30)."""
        d, uid = self._directory_for(actor, as_of)
        seen = self._seen_groups(d, uid)
        out = []
        for user, u in d.users.items():
            if user != uid and u.home_group not in seen:
                continue
            grants = {g: p for g, p in d.grants.get(user, {}).items() if g in seen}
            effective = {g: p for g, p in _effective(d, user).items() if g in seen}
            out.append(UserView(user, u.name, u.home_group, grants, effective))
        return sorted(out, key=lambda v: v.name.casefold())

    def _directory_as_of(self, as_of: datetime | int) -> DirectoryState:
        """The directory as it was at ``as_of``: only its own events are replayed."""
        with self._reading(as_of, lambda: ()) as (_, d, _today):
            return d

    def tags(self, actor: UserId, *, as_of: datetime | int | None = None) -> list[str]:
        """The tag catalogue (R28): shared by every user, its names are not secret;
        with ``as_of``, as it was then (R30)."""
        if as_of is not None:
            self._directory_for(actor, as_of)  # the actor existed then
            return sorted(self._tags_as_of(as_of).tags, key=str.casefold)
        uid = self._actor(actor)
        self._refresh(views=False)
        directory.require_user(self._directory(), uid)
        return sorted(self._tags().tags, key=str.casefold)

    def _tags_as_of(self, as_of: datetime | int) -> catalogue.TagsState:
        """The catalogue's aggregate folded up to ``as_of``: its events are found
        through the history index of each tag name it ever held (every one of
        its events names a tag), so the replay costs the catalogue's history,
        not the log's. As of a time, its own events say when: one read."""
        events = self.event_log.events_of(TAGS_ID)
        if isinstance(as_of, datetime):
            state = catalogue.initial()
            for event in events:
                if event.timestamp > as_of:
                    break
                state = catalogue.evolve(state, event)
            return state
        names = {getattr(e, "name", None) for e in events}
        positions: set[int] = set()
        for name in sorted(n for n in names if isinstance(n, str)):
            positions.update(self.views.history_positions(f"tag:{name}"))
        state = catalogue.initial()
        for position, event in self.event_log.at(sorted(positions)):
            if event.originator_id != TAGS_ID:
                continue
            if (position > as_of) if isinstance(as_of, int) else (event.timestamp > as_of):
                break
            state = catalogue.evolve(state, event)
        return state

    def visible_group_named(self, actor: UserId, name: str) -> GroupId:
        """A static group the actor sees (READ, R11), by name or id.

        A group outside the actor's visibility answers exactly as one that does
        not exist, with the name as given (R14): never its id.
        """
        uid = self._actor(actor)
        text = lookup_name("static group", name)
        self._refresh()
        d = self._directory()
        try:
            gid: GroupId | None = GroupId(uuid.UUID(text))
        except ValueError:
            gid = d.group_named(text)
        if gid is None or gid not in d.groups or not self._can(d, uid, gid, Permission.READ):
            raise NotFound("static group", text)
        return gid
