"""Distributing and removing license pools (R7, R13, R19)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from ..domain import directory, license, pool, tags
from ..domain.directory import DirectoryState
from ..domain.errors import (
    ConfirmationRequired,
    InvalidInput,
)
from ..domain.events import DomainEvent, Emitter, PoolMoved, user_actor
from ..domain.ids import (
    TAGS_ID,
    ComputerId,
    GroupId,
    PoolId,
    PublicId,
    UserId,
)
from ..domain.pool import PoolState
from ..handler import Handler
from ..projections.fold import (
    license_target,
    pool_target,
)
from ..projections.views import MoveImpact
from ..service import Decision


class PoolCommands(Handler):
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

    def _move(
        self, uid: UserId, ids: list[PoolId], target: GroupId
    ) -> tuple[DirectoryState, list[PoolState], list[DomainEvent]]:
        """The decision of a move (R13), shared by the move and its preview (R37)."""
        d = self._directory()
        states = [self._visible_pool(d, uid, i) for i in ids]
        directory.require_administrator(d, uid, "moving license pools")
        directory.require_group(d, target)
        now, who = self._now(), user_actor(uid)
        out: list[DomainEvent] = []
        for p in states:
            out += pool.move(p, target, now, who)
        return d, states, out

    def move_pools(self, actor: UserId, pool_ids: Iterable[PoolId], to_group: GroupId) -> None:
        """R13: distribute pools to a static group (administrators only)."""
        uid = self._actor(actor)
        ids = self._pool_ids(pool_ids)
        target = GroupId(to_group)

        def decide() -> Decision[None]:
            return None, self._move(uid, ids, target)[2]

        self._execute(decide)

    def preview_move(
        self, actor: UserId, pool_ids: Iterable[PoolId], to_group: GroupId
    ) -> MoveImpact:
        """R37: what :meth:`move_pools` with the same arguments would change, recording
        nothing; it refuses what the move would refuse, with the same errors."""
        uid = self._actor(actor)
        ids = self._pool_ids(pool_ids)
        target = GroupId(to_group)
        self._refresh(views=False)
        d, states, events = self._move(uid, ids, target)
        moved = {e.originator_id for e in events if isinstance(e, PoolMoved)}
        sight = {u: d.visible_groups(u) for u in sorted(d.users, key=str)}
        gains: dict[UserId, set[PublicId]] = {}
        loses: dict[UserId, set[PublicId]] = {}
        outside: dict[ComputerId, set[PublicId]] = {}
        inside_target = d.subgroups(target)
        for p in states:
            if p.pool_id not in moved or p.group is None:
                continue
            for u, groups in sight.items():
                before, after = p.group in groups, target in groups
                if before != after:
                    (gains if after else loses).setdefault(u, set()).update(p.public_ids)
            for lic in self._licenses(sorted(p.public_ids)):
                pid = lic.public_id
                for computer_id in sorted({c for c, _ in lic.seats}):
                    c = self._computer(ComputerId(computer_id))
                    if (
                        c.exists
                        and not c.removed
                        and c.group not in inside_target
                        and any(i.public_id == pid and i.activated for i in c.products.values())
                    ):
                        outside.setdefault(c.computer_id, set()).add(pid)
        return MoveImpact(
            to_group=target,
            pool_ids=tuple(ids),
            gains={u: frozenset(v) for u, v in gains.items()},
            loses={u: frozenset(v) for u, v in loses.items()},
            activations_outside={c: frozenset(v) for c, v in outside.items()},
        )

    def remove_pools(self, actor: UserId, pool_ids: Iterable[PoolId], *, confirm: bool) -> None:
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
                for lic in self._licenses(sorted(p.public_ids)):
                    out += license.remove(lic, now, who)
                    tags.unassign_target(tag_state, license_target(lic.public_id), untag)
            # tags come off first, while the pool still lists its licenses, so each
            # license's history shows them (R29)
            return None, untag.events + out

        self._execute(decide)
