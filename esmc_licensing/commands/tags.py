"""Tags (R28) and saved filters (R8a)."""

from __future__ import annotations

import uuid

from ..domain import directory, saved_filters, tags
from ..domain.directory import DirectoryState
from ..domain.errors import (
    NotFound,
    PermissionDenied,
)
from ..domain.events import user_actor
from ..domain.filters import LicenseFilter
from ..domain.ids import (
    ComputerId,
    GroupId,
    PoolId,
    PublicId,
    Target,
    UserId,
    filters_aggregate_id,
)
from ..domain.values import Permission
from ..handler import Handler
from ..projections.fold import (
    computer_target,
    license_target,
    pool_target,
)
from ..service import Decision


class TagCommands(Handler):
    # -- tags (R28) -------------------------------------------------------------

    def create_tag(self, actor: UserId, name: str) -> None:
        uid = self._actor(actor)

        def decide() -> Decision[None]:
            d = self._directory()
            if not any(p >= Permission.WRITE for p in d.grants.get(uid, {}).values()):
                raise PermissionDenied(
                    "creating a tag needs WRITE permission on licenses in at least one group"
                )
            return None, tags.create(self._tags(), name, self._now(), user_actor(uid))

        self._execute(decide)

    def delete_tag(self, actor: UserId, name: str, *, dry_run: bool = False) -> None:
        """Deleting a tag unassigns it everywhere, so it needs an administrator.
        ``dry_run``: the same checks, nothing recorded."""
        uid = self._actor(actor)

        def decide() -> Decision[None]:
            directory.require_administrator(self._directory(), uid, "deleting a tag")
            return None, tags.delete(self._tags(), name, self._now(), user_actor(uid))

        self._execute(decide, dry_run=dry_run)

    def _tag_target(self, d: DirectoryState, uid: UserId, target: object) -> tuple[str, GroupId]:
        """The stored name of a tag target and its group; NotFound outside visibility."""
        if isinstance(target, PoolId):
            p = self._visible_pool(d, uid, target)
            assert p.group is not None
            return pool_target(p.pool_id), p.group
        if isinstance(target, ComputerId):
            c = self._computer(target)
            if not c.exists or c.group is None or not d.can(uid, c.group, Permission.READ):
                raise NotFound("computer", target)
            return computer_target(target), c.group
        if isinstance(target, uuid.UUID):
            raise NotFound("tag target", target)
        pid = PublicId(target)
        lic = self._license(pid)
        if not lic.exists or lic.pool_id is None:
            raise NotFound("license", pid)
        p = self._pool(lic.pool_id)
        if p.group is None or not d.can(uid, p.group, Permission.READ):
            raise NotFound("license", pid)
        return license_target(pid), p.group

    def _change_tag(self, actor: object, target: object, name: str, assign: bool) -> None:
        uid = self._actor(actor)
        decider = tags.assign if assign else tags.unassign

        def decide() -> Decision[None]:
            d = self._directory()
            key, group = self._tag_target(d, uid, target)
            if not d.can(uid, group, Permission.WRITE):
                raise PermissionDenied(
                    f"{'assigning' if assign else 'unassigning'} a tag needs WRITE permission "
                    f"on licenses in group {d.groups[group].name!r}"
                )
            return None, decider(self._tags(), name, key, self._now(), user_actor(uid))

        self._execute(decide)

    def assign_tag(self, actor: UserId, target: Target, name: str) -> None:
        """Tag a pool (PoolId), a license (PublicId or its string) or a computer (ComputerId)."""
        self._change_tag(actor, target, name, assign=True)

    def unassign_tag(self, actor: UserId, target: Target, name: str) -> None:
        self._change_tag(actor, target, name, assign=False)

    # -- saved filters (R8a) ------------------------------------------------------------

    def save_filter(self, actor: UserId, name: str, license_filter: LicenseFilter) -> None:
        uid = self._actor(actor)
        agg = filters_aggregate_id(uid)

        def decide() -> Decision[None]:
            state = self._load(agg, lambda: saved_filters.initial(uid), saved_filters.evolve)
            return None, saved_filters.save(
                state, name, license_filter, self._now(), user_actor(uid)
            )

        self._execute(decide)

    def delete_filter(self, actor: UserId, name: str) -> None:
        uid = self._actor(actor)
        agg = filters_aggregate_id(uid)

        def decide() -> Decision[None]:
            state = self._load(agg, lambda: saved_filters.initial(uid), saved_filters.evolve)
            return None, saved_filters.delete(state, name, self._now(), user_actor(uid))

        self._execute(decide)
