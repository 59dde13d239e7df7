"""Queries: each takes the acting user first and shows only what it may see (R14)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from .domain.errors import (
    InvalidInput,
    NotFound,
)
from .domain.filters import LicenseFilter
from .domain.ids import (
    PoolId,
    PublicId,
)
from .projections.memory import (
    ReadModel,
    license_target,
    pool_target,
)
from .projections.views import HistoryEntry, LicenseView, PoolView
from .service import ServiceBase


class Queries(ServiceBase):
    # -- queries ----------------------------------------------------------------

    def _today(self, as_of: datetime | int | None, model: ReadModel) -> datetime:
        if isinstance(as_of, datetime):
            return as_of.astimezone(UTC)
        if isinstance(as_of, int) and model.audit:
            return model.audit[-1].when
        return self._now()

    def licenses(
        self,
        actor: object,
        filter: LicenseFilter | None = None,
        *,
        as_of: datetime | int | None = None,
    ) -> list[LicenseView]:
        """The licenses the actor may see, ordered by Public ID (R11, R14)."""
        if filter is not None and not isinstance(filter, LicenseFilter):
            raise InvalidInput("filter must be a LicenseFilter")
        model = self._model(as_of)
        with self._view_lock:
            uid = self._actor(actor, model.directory)
            today = self._today(as_of, model).date()
            return model.licenses_for(uid, filter, today, self.policy)

    def license(
        self, actor: object, public_id: object, *, as_of: datetime | int | None = None
    ) -> LicenseView:
        pid = PublicId(public_id)
        model = self._model(as_of)
        with self._view_lock:
            uid = self._actor(actor, model.directory)
            lic = model.license_visible(uid, pid)
            if lic is None:
                raise NotFound("license", pid)
            return model.license_view(lic, self._today(as_of, model).date(), self.policy)

    def pools(
        self,
        actor: object,
        *,
        tags: Iterable[str] = (),
        as_of: datetime | int | None = None,
    ) -> list[PoolView]:
        """The pools the actor may see; with ``tags``, those carrying any of them (R28)."""
        wanted = _tag_set(tags)
        model = self._model(as_of)
        with self._view_lock:
            uid = self._actor(actor, model.directory)
            rows = model.pools_for(uid)
        return [p for p in rows if not wanted or _carries(p.tags, wanted)]

    def filters(self, actor: object) -> dict[str, LicenseFilter]:
        model = self._model(None)
        with self._view_lock:
            uid = self._actor(actor, model.directory)
            state = model.filters.get(uid)
            return dict(state.presets) if state else {}

    def history(self, actor: object, target: object) -> list[HistoryEntry]:
        """What happened to a license or pool, oldest first (R29).

        A license's history includes its pool's events that affect it (moves,
        tags, removal). Removed objects keep their history, visible to whoever
        could see them where they were last.
        """
        model = self._model(None)
        with self._view_lock:
            uid = self._actor(actor, model.directory)
            visible = model.visible_groups(uid)
            if isinstance(target, uuid.UUID):
                pool_id = PoolId(target)
                p = model.pools.get(pool_id)
                if p is None or p.group not in visible:
                    raise NotFound("license pool", pool_id)
                return model.history_of(pool_target(pool_id))
            pid = PublicId(target)
            lic = model.licenses.get(pid)
            p = model.pools.get(lic.pool_id) if lic and lic.pool_id else None
            if p is None or p.group not in visible:
                raise NotFound("license", pid)
            return model.history_of(license_target(pid))


def _tag_set(tags: Iterable[str]) -> frozenset[str]:
    """Tag names to filter by, compared case-insensitively like the names themselves."""
    if isinstance(tags, str):
        tags = (tags,)
    return frozenset(str(t).strip().casefold() for t in tags if str(t).strip())


def _carries(carried: Iterable[str], wanted: frozenset[str]) -> bool:
    return any(t.casefold() in wanted for t in carried)
