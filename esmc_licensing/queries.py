"""Queries: each takes the acting user first and shows only what it may see (R14).

They read the indexed views (:mod:`.projections.tables`) for the actor's
visible groups only, and compute each license's status from today's date
(R8): cost follows what they return, not the size of the store.
"""

from __future__ import annotations

import functools
import operator
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from .domain.directory import DirectoryState
from .domain.errors import InvalidInput, NotFound
from .domain.events import DomainEvent, LicenseAdded, LicenseJoinedPool, PoolCreated
from .domain.filters import LicenseFilter
from .domain.ids import ComputerId, GroupId, PoolId, PublicId, Target, UserId
from .domain.values import LicenseType, Policy, Source
from .forecasting import Forecasts
from .handler import Handler
from .history_names import Names, check_bounds, entry, within
from .projections.fold import computer_target, license_target, pool_target
from .projections.tables import ViewStore, row_expires, row_status
from .projections.views import Forecast, HistoryEntry, LicenseView, PoolView


def visible_groups(d: DirectoryState, uid: UserId) -> frozenset[GroupId] | None:
    """The groups a user sees (R11), or None when that is every group."""
    groups = d.visible_groups(uid)
    return None if len(groups) >= len(d.groups) else groups


#: ids by their text: every query makes one per row, and the same ones again
_public_id = functools.lru_cache(maxsize=1 << 17)(PublicId)
_pool_id = functools.lru_cache(maxsize=1 << 16)(PoolId)
_group_id = functools.lru_cache(maxsize=1 << 12)(GroupId)
_license_type = functools.lru_cache(maxsize=None)(LicenseType)
_source = functools.lru_cache(maxsize=None)(Source)


def license_view(
    public_id: str,
    group: str,
    v: dict[str, Any],
    tags: dict[str, frozenset[str]],
    today: date,
    policy: Policy,
    forecast: Forecast | None = None,
) -> LicenseView:
    """A license's view from its row, with its status as of ``today`` (R8)."""
    empty: frozenset[str] = frozenset()
    return LicenseView(
        public_id=_public_id(public_id),
        pool_id=_pool_id(v["pool_id"]),
        group=_group_id(group),
        license_type=_license_type(v["license_type"]),
        product=v["product"],
        units=v["units"],
        used_units=v["used_units"],
        offline_units=v["offline_units"],
        subunits=v["subunits"],
        expires=row_expires(v),
        subscription=v["subscription"],
        owner=v["owner"],
        contact=v["contact"],
        source=_source(v["source"]),
        tags=tags.get(license_target(public_id), empty) | tags.get(
            pool_target(v["pool_id"]), empty
        ),
        status=row_status(v, today, policy),
        product_code=v["product_code"],
        license_user=v["license_user"],
        key_last4=v["key_last4"],
        forecast=forecast,
    )


def actor_name(d: DirectoryState, actor: str) -> str:
    if actor.startswith("user:"):
        try:
            u = d.users.get(UserId(actor[5:]))
        except Exception:
            u = None
        if u is not None:
            return u.name
    return actor


def visible_license_row(
    views: ViewStore, d: DirectoryState, uid: UserId, pid: PublicId, today: date, policy: Policy
) -> tuple[tuple[str, str, dict[str, Any]], dict[str, frozenset[str]]]:
    """One license's row (public id, group, view fields) and tags, if the actor
    sees it; ``NotFound`` alike whether it is invisible or absent (R14)."""
    rows, tags = views.license_rows(visible_groups(d, uid), None, today, policy, public_id=str(pid))
    if not rows:
        raise NotFound("license", pid)
    return rows[0], tags


class _Answers:
    """The last license lists answered, by (today, policy, visible groups,
    filter), each with the views' position it was made at: a repeated query on
    unchanged views costs a lookup, and after the views moved only the
    licenses whose rows or pools changed since are made again.

    Bounded by the license views they hold in all (``rows``), so memory does
    not grow with the number of licenses a store holds beyond one or two
    answers' worth.
    """

    def __init__(self, rows: int = 20_000) -> None:
        self._rows = rows
        self._held = 0
        self._items: OrderedDict[Any, tuple[int, list[LicenseView]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> tuple[int, list[LicenseView]] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: Any, position: int, answer: list[LicenseView]) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._held -= len(old[1])
            if len(answer) > self._rows:
                return
            self._items[key] = (position, answer)
            self._held += len(answer)
            while self._held > self._rows:
                _, (_, dropped) = self._items.popitem(last=False)
                self._held -= len(dropped)


#: past this many changed licenses, a kept answer is made again whole
_INCREMENTAL_LIMIT = 2_000
_by_public_id = operator.attrgetter("public_id")


class _MadeViews:
    """Each license's view as last made, reused while its row, group, tags,
    today and the policy are unchanged: after a command changed a few
    licenses, a list of thousands rebuilds only those (bounded to ``size``)."""

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._items: dict[str, tuple[Any, ...]] = {}

    def view(
        self,
        public_id: str,
        group: str,
        v: dict[str, Any],
        tags: dict[str, frozenset[str]],
        today: date,
        policy: Policy,
        forecast: Forecast | None = None,
    ) -> LicenseView:
        own = tags.get(license_target(public_id))
        inherited = tags.get(pool_target(v["pool_id"]))
        found = self._items.get(public_id)
        if (
            found is not None
            and found[1] == group
            and found[2] == own
            and found[3] == inherited
            and found[4] == today
            and found[5] is policy
            and found[7] is forecast
            and found[0] == v
        ):
            return found[6]  # type: ignore[no-any-return]
        made = license_view(public_id, group, v, tags, today, policy, forecast)
        if len(self._items) >= self._size:
            self._items.clear()
        self._items[public_id] = (v, group, own, inherited, today, policy, made, forecast)
        return made


class Queries(Handler):
    @functools.cached_property
    def _answers(self) -> _Answers:
        return _Answers()

    @functools.cached_property
    def _forecasts(self) -> Forecasts:
        return Forecasts()

    @functools.cached_property
    def _made_views(self) -> _MadeViews:
        return _MadeViews()

    def licenses(
        self,
        actor: UserId,
        filter: LicenseFilter | None = None,
        *,
        as_of: datetime | int | None = None,
    ) -> list[LicenseView]:
        """The licenses the actor may see, ordered by Public ID (R11, R14)."""
        if filter is not None and not isinstance(filter, LicenseFilter):
            raise InvalidInput("filter must be a LicenseFilter")
        with self._reading(as_of) as (views, d, today):
            uid = self._actor(actor, d)
            groups = visible_groups(d, uid)
            if as_of is not None:
                rows, tags = views.license_rows(groups, filter, today, self.policy)
                forecasts = self._forecasts.of(views, [(pid, v) for pid, _, v in rows], today)
                rows = _depleting(rows, forecasts, today, filter)
                return [
                    license_view(pid, g, v, tags, today, self.policy, forecasts[pid])
                    for pid, g, v in rows
                ]
            # the views are a function of their position: an answer holds until
            # they move, then only what changed since is made again
            key = (today, self.policy, groups, filter)
            found = self._answers.get(key)
            if found is not None and found[0] == self._views_position:
                return list(found[1])
            made = self._made_views.view
            if found is not None:
                updated = self._updated_answer(views, found, groups, filter, today)
                if updated is not None:
                    self._answers.put(key, *updated)
                    return list(updated[1])
            position = self._views_position  # the rows read next are at least as new
            rows, tags = views.license_rows(groups, filter, today, self.policy)
            # forecasts (R36): kept per license for the day, made again only where changed
            forecasts = self._forecasts.of(views, [(pid, v) for pid, _, v in rows], today)
            rows = _depleting(rows, forecasts, today, filter)
            answer = [
                made(pid, g, v, tags, today, self.policy, forecasts[pid]) for pid, g, v in rows
            ]
            self._answers.put(key, position, answer)
            return list(answer)

    def _updated_answer(
        self,
        views: ViewStore,
        kept: tuple[int, list[LicenseView]],
        groups: frozenset[GroupId] | None,
        filter: LicenseFilter | None,
        today: date,
    ) -> tuple[int, list[LicenseView]] | None:
        """A kept answer brought up to the views' position by making again the
        licenses whose rows or pools changed since; None when that is not the
        cheaper way (a tag changed, many licenses changed, views emptied)."""
        position, answer = kept
        changes = views.changed_since(position)
        if changes is None or changes[3]:
            return None
        now, changed, pools, _ = changes
        if len(changed) > _INCREMENTAL_LIMIT or len(pools) > _INCREMENTAL_LIMIT:
            return None
        if pools:
            changed |= views.licenses_in_pools(sorted(pools))
            changed |= {str(v.public_id) for v in answer if str(v.pool_id) in pools}
        if len(changed) > _INCREMENTAL_LIMIT:
            return None
        rows, tags = views.license_rows(
            groups, filter, today, self.policy, among=sorted(changed)
        )
        forecasts = self._forecasts.of(views, [(pid, v) for pid, _, v in rows], today)
        rows = _depleting(rows, forecasts, today, filter)
        made = self._made_views.view
        fresh = [
            made(pid, g, v, tags, today, self.policy, forecasts[pid]) for pid, g, v in rows
        ]
        if not fresh and not changed:
            return now, answer
        out = [v for v in answer if v.public_id not in changed]
        out += fresh
        out.sort(key=_by_public_id)
        return now, out

    def license(
        self, actor: UserId, public_id: PublicId | str, *, as_of: datetime | int | None = None
    ) -> LicenseView:
        pid = PublicId(public_id)
        with self._reading(as_of, lambda: self._targets_of_license(pid)) as (views, d, today):
            uid = self._actor(actor, d)
            (found, group, v), tags = visible_license_row(views, d, uid, pid, today, self.policy)
            forecast = self._forecasts.of(views, [(found, v)], today)[found]
            return license_view(found, group, v, tags, today, self.policy, forecast)

    def _targets_of_license(self, pid: PublicId) -> list[str]:
        """The audit targets one license's view is folded from: the license and
        every pool it has been in (their creation, moves and tags)."""
        target = license_target(pid)
        pools = {
            str(e.pool_id) if isinstance(e, LicenseAdded) else str(e.originator_id)
            for _, e in self.event_log.at(self.views.history_positions(target))
            if isinstance(e, (LicenseAdded, LicenseJoinedPool))
        }
        return [target, *(pool_target(p) for p in sorted(pools))]

    def pools(
        self,
        actor: UserId,
        *,
        tags: Iterable[str] = (),
        as_of: datetime | int | None = None,
    ) -> list[PoolView]:
        """The pools the actor may see; with ``tags``, those carrying any of them (R28)."""
        wanted = _tag_set(tags)
        with self._reading(as_of) as (views, d, _):
            uid = self._actor(actor, d)
            states, tags_of = views.pool_rows(visible_groups(d, uid))
        rows = []
        for p in states:
            assert p.group is not None and p.source is not None
            carried = tags_of.get(pool_target(p.pool_id), frozenset())
            if wanted and not _carries(carried, wanted):
                continue
            rows.append(
                PoolView(
                    pool_id=p.pool_id,
                    name=p.name,
                    group=p.group,
                    source=p.source,
                    tags=carried,
                    public_ids=tuple(sorted(p.public_ids)),
                    indivisible=p.indivisible,
                    company=p.company,
                )
            )
        return rows

    def filters(
        self, actor: UserId, *, as_of: datetime | int | None = None
    ) -> dict[str, LicenseFilter]:
        """The actor's saved filter presets by name (R8a); with ``as_of``, as they
        were then (R30)."""
        with self._reading(as_of) as (views, d, _):
            uid = self._actor(actor, d)
            state = views.state("filters", str(uid))
        return dict(state.presets) if state else {}

    def _history(
        self,
        views: ViewStore,
        d: DirectoryState,
        target: str,
        visible: frozenset[GroupId] | None,
    ) -> list[HistoryEntry]:
        """The events naming ``target``, from the audit index and the log, in log
        order (R29). A license's includes the creation of a pool made with it."""
        positions = set(views.history_positions(target))
        events = self.event_log.at(sorted(positions))
        if target.startswith("license:") and events:
            first = events[0][0]
            pools = {
                e.pool_id if isinstance(e, LicenseAdded) else e.originator_id
                for _, e in events
                if isinstance(e, (LicenseAdded, LicenseJoinedPool))
            }
            created = []
            for p in sorted(pools, key=str):
                pool_positions = views.history_positions(pool_target(p), limit=1)
                if pool_positions and pool_positions[0] >= first:
                    created.append(pool_positions[0])
            if created:
                extra = [
                    (q, e) for q, e in self.event_log.at(created) if isinstance(e, PoolCreated)
                ]
                events = sorted([*events, *extra], key=lambda pe: pe[0])
        names = Names(d, views, visible, self.event_log)  # names as they were then (R29)
        names.prefetch((target, event) for _, event in events)
        return [_entry(d, target, p, event, names) for p, event in events]

    def history(
        self,
        actor: UserId,
        target: Target,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
        as_of: datetime | int | None = None,
    ) -> list[HistoryEntry]:
        """What happened to a license, pool or computer, oldest first, in causal order (R29).

        A license's history includes its pool's events that affect it (its
        creation with the license, moves, tags, removal). Details keep their
        types and name groups, users, pools and computers beside their ids,
        by the names they had then; what lies outside the reader's visibility
        is shown as None. Removed objects keep their history, visible to
        whoever could see them where they were last.

        ``since`` / ``until``: from / up to a time or log position (inclusive).
        ``as_of``: the history as it was recorded up to then (R30), for an
        actor who existed then; what it shows of other objects is decided by
        where they are now.
        """
        check_bounds(since=since, until=until, as_of=as_of)
        if as_of is not None:
            with self._reading(as_of, lambda: ()) as (_, then, _today):
                self._actor(actor, then)  # NotFound: the user did not exist yet
        with self._reading(None) as (views, d, _):
            uid = self._actor(actor, d)
            visible = d.visible_groups(uid)
            shown = None if len(visible) >= len(d.groups) else visible
            # who may see it (R14), from the views' columns: a pool's state holds
            # every license of it, and is not decoded for this
            def sees(kind: str, key: str) -> bool:
                _, group = views.group_of(kind, key)
                return group is not None and GroupId(group) in visible

            if isinstance(target, ComputerId):  # removed computers keep theirs
                if not sees("computer", str(target)):
                    raise NotFound("computer", target)
                entries = self._history(views, d, computer_target(target), shown)
                return within(entries, since, until, as_of)
            if isinstance(target, uuid.UUID):
                pool_id = PoolId(target)
                if not sees("pool", str(pool_id)):
                    raise NotFound("license pool", pool_id)
                entries = self._history(views, d, pool_target(pool_id), shown)
                return within(entries, since, until, as_of)
            pid = PublicId(target)
            if not sees("license", str(pid)):
                raise NotFound("license", pid)
            entries = self._history(views, d, license_target(pid), shown)
            return within(entries, since, until, as_of)


def _entry(
    d: DirectoryState, target: str, position: int, event: DomainEvent, names: Names
) -> HistoryEntry:
    """The one way an event becomes a history entry (histories and the audit log)."""
    return entry(d, target, position, event, names, actor_name)


def _depleting(
    rows: list[tuple[str, str, dict[str, Any]]],
    forecasts: dict[str, Forecast],
    today: date,
    f: LicenseFilter | None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """The rows whose forecast reaches their units within the filter's
    ``depleting_within`` days (R36); all of them when it does not say."""
    if f is None or f.depleting_within is None:
        return rows
    last = date.fromordinal(today.toordinal() + f.depleting_within)
    out = []
    for row in rows:
        depletion = forecasts[row[0]].depletion
        if depletion is not None and depletion <= last:
            out.append(row)
    return out


def _tag_set(tags: Iterable[str]) -> frozenset[str]:
    """Tag names to filter by, compared case-insensitively like the names themselves."""
    if isinstance(tags, str):
        tags = (tags,)
    return frozenset(str(t).strip().casefold() for t in tags if str(t).strip())


def _carries(carried: Iterable[str], wanted: frozenset[str]) -> bool:
    return any(t.casefold() in wanted for t in carried)
