"""Distributing and removing license pools (R7, R13, R19)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from ..domain import directory, license, pool, tags
from ..domain.errors import (
    ConfirmationRequired,
    InvalidInput,
)
from ..domain.events import DomainEvent, Emitter, user_actor
from ..domain.ids import (
    TAGS_ID,
    GroupId,
    PoolId,
)
from ..projections.fold import (
    license_target,
    pool_target,
)
from ..service import Decision, ServiceBase


class PoolCommands(ServiceBase):
    # -- pools (R7, R13, R19) ---------------------------------------------------------

    def _pool_ids(self, pool_ids: Iterable[object]) -> list[PoolId]:
        if isinstance(pool_ids, (str, bytes, uuid.UUID)):
            pool_ids = [pool_ids]
        if not isinstance(pool_ids, Iterable):
            raise InvalidInput(
                f"name the license pools as a list of pool ids, not {type(pool_ids).__name__}"
            )
        ids = list(dict.fromkeys(PoolId(p) for p in pool_ids))
        if not ids:
            raise InvalidInput("name at least one license pool")
        return ids

    def move_pools(self, actor: object, pool_ids: Iterable[object], to_group: object) -> None:
        """R13: distribute pools to a static group (administrators only)."""
        uid = self._actor(actor)
        ids = self._pool_ids(pool_ids)
        target = GroupId(to_group)

        def decide() -> Decision[None]:
            d = self._directory()
            states = [self._visible_pool(d, uid, i) for i in ids]
            directory.require_administrator(d, uid, "moving license pools")
            directory.require_group(d, target)
            now, who = self._now(), user_actor(uid)
            out: list[DomainEvent] = []
            for p in states:
                out += pool.move(p, target, now, who)
            return None, out

        self._execute(decide)

    def remove_pools(self, actor: object, pool_ids: Iterable[object], *, confirm: bool) -> None:
        """R19: remove pools and their licenses; activated products stay activated."""
        uid = self._actor(actor)
        ids = self._pool_ids(pool_ids)

        def decide() -> Decision[None]:
            d = self._directory()
            states = [self._visible_pool(d, uid, i) for i in ids]
            directory.require_administrator(d, uid, "removing license pools")
            if confirm is not True:
                count = sum(len(p.public_ids) for p in states)
                raise ConfirmationRequired(
                    f"removing {len(states)} license pool(s) with {count} license(s) needs "
                    "explicit confirmation (confirm=True); products activated with them "
                    "stay activated"
                )
            now, who = self._now(), user_actor(uid)
            tag_state = self._tags()
            untag = Emitter(TAGS_ID, tag_state.version, now, who)
            out: list[DomainEvent] = []
            for p in states:
                out += pool.remove(p, now, who)
                tags.unassign_target(tag_state, pool_target(p.pool_id), untag)
                for pid in sorted(p.public_ids):
                    out += license.remove(self._license(pid), now, who)
                    tags.unassign_target(tag_state, license_target(pid), untag)
            # tags come off first, while the pool still lists its licenses, so each
            # license's history shows them (R29)
            return None, untag.events + out

        self._execute(decide)
