"""Commands on static groups, users and permission sets (R10, R11)."""

from __future__ import annotations

import uuid

from ..domain import directory
from ..domain.errors import NotFound
from ..domain.ids import (
    GroupId,
    UserId,
)
from ..domain.values import Permission, lookup_name
from ..service import Decision, ServiceBase


class DirectoryCommands(ServiceBase):
    # -- directory (R10, R11) ---------------------------------------------------

    def create_group(self, actor: object, name: str, parent: object = None) -> GroupId:
        """A static group under ``parent`` (None: under All)."""
        uid = self._actor(actor)
        parent_id = None if parent is None else GroupId(parent)

        def decide() -> Decision[GroupId]:
            return directory.create_group(self._directory(), uid, name, parent_id, self._now())

        return self._execute(decide)

    def create_user(self, actor: object, name: str, home_group: object) -> UserId:
        uid = self._actor(actor)
        home = GroupId(home_group)

        def decide() -> Decision[UserId]:
            return directory.create_user(self._directory(), uid, name, home, self._now())

        return self._execute(decide)

    def grant(self, actor: object, user: object, group: object, permission: Permission) -> None:
        uid = self._actor(actor)
        target = UserId(user)
        gid = GroupId(group)

        def decide() -> Decision[None]:
            return None, directory.grant(
                self._directory(), uid, target, gid, permission, self._now()
            )

        self._execute(decide)

    def visible_group_named(self, actor: object, name: str) -> GroupId:
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
