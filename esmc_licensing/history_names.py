"""History entries as they happened: names as they were then, nothing unseen (R29, R14).

One event becomes one :class:`~esmc_licensing.projections.views.HistoryEntry`
here, for a license's, pool's or computer's history and for the audit log.

**Names as they were at the entry's position.** Groups and users cannot be
renamed, so their names now are their names then. A pool or a computer can
change its name: a pool removed and made again for an owner written
differently (``Acme``, later ``ACME``) keeps its id under the new name, and a
computer removed and registered again (the same hardware) takes the name and
group it is registered with. Each of their lives starts with a
``PoolCreated`` or ``ComputerRegistered``; :class:`Lives` finds those among
the positions the audit index lists for the object -- reading the stored
rows' topics and decoding only the creations -- once per object and
reading, so a history costs the objects it names, not the length of the log.

**Nothing about objects the reader cannot see.** An id the reader may not
see (a group outside their visibility, a pool, a computer or a license in
such a group, a user whose home group it is) is shown as None, and so is its
name. A pool or computer is seen where it is now (or was last, removed):
whoever sees it there sees its whole history, like a pool moved to their group.
The actor of an entry is always named: who did it is the history.

**No installation secret.** ``DirectoryInitialised`` records the console
token offline license files are generated for (R16): it is shown as
``(hidden)``, like the fields that never leave the store (keys, credentials).
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from .domain.directory import DirectoryState
from .domain.errors import InvalidInput
from .domain.events import (
    CLASSES,
    ComputerRegistered,
    ComputerRemoved,
    DirectoryInitialised,
    DomainEvent,
    LicenseAdded,
    PoolCreated,
    PoolRemoved,
)
from .domain.ids import GroupId, UserId
from .eventlog import EventLog
from .projections.fold import details, event_name
from .projections.tables import ViewStore
from .projections.views import HistoryEntry

#: detail keys that name a static group
GROUP_KEYS = frozenset({"group", "from_group", "to_group", "parent", "home_group"})
#: detail values that are installation secrets: shown as this, never as they are
HIDDEN = "(hidden)"
_SECRET_DETAILS: dict[type, frozenset[str]] = {DirectoryInitialised: frozenset({"console_token"})}
#: what starts a life of a pool or a computer (its name and group from then on)
_CREATIONS: dict[str, type[DomainEvent]] = {"pool": PoolCreated, "computer": ComputerRegistered}
#: what ends it
_REMOVALS: dict[str, type[DomainEvent]] = {"pool": PoolRemoved, "computer": ComputerRemoved}
#: the most objects whose lives an audit log keeps in memory as it streams
MAX_KNOWN = 50_000
#: the most view states a reading keeps at hand (one history needs a few)
_MAX_STATES = 4096


class Life:
    """One life of a pool or computer: from its creation to its removal (None: alive)."""

    __slots__ = ("end", "group", "name", "start")

    def __init__(self, start: int, name: str, group: GroupId | None) -> None:
        self.start = start
        self.end: int | None = None
        self.name = name
        self.group = group


def _record(lives: list[Life], position: int, event: DomainEvent) -> None:
    """A creation starts a life, a removal ends the last one."""
    if isinstance(event, (PoolCreated, ComputerRegistered)):
        lives.append(Life(position, event.name, event.group))
    elif lives:
        lives[-1].end = position


class Lives:
    """The names and groups a pool or computer had, by log position (R29)."""

    def __init__(self, log: EventLog, views: ViewStore) -> None:
        self.log = log
        self.views = views
        self._known: dict[str, list[Life]] = {}

    def seen(self, position: int, event: DomainEvent, complete: bool) -> None:
        """An event read in log order (the audit log): a creation or removal seen
        needs no lookup later. ``complete``: the reading started at the first event,
        so an object first seen here had no earlier life."""
        kind = "pool" if isinstance(event, (PoolCreated, PoolRemoved)) else "computer"
        target = f"{kind}:{event.originator_id}"
        lives = self._known.get(target)
        if lives is None:
            if not complete:
                return
            if len(self._known) >= MAX_KNOWN:  # bounded memory: the oldest are read again
                del self._known[next(iter(self._known))]
            lives = self._known[target] = []
        if isinstance(event, (PoolCreated, ComputerRegistered)):
            if not lives or lives[-1].start < position:
                lives.append(Life(position, event.name, event.group))
        elif lives and (lives[-1].end is None or lives[-1].end < position):
            lives[-1].end = position

    def load(self, targets: Iterable[tuple[str, str]]) -> None:
        """Find the lives of several pools and computers at once (a history's)."""
        wanted: dict[uuid.UUID, str] = {}
        for kind, key in targets:
            target = f"{kind}:{key}"
            if target in self._known or kind not in _CREATIONS:
                continue
            try:
                wanted[uuid.UUID(key)] = target
            except ValueError:
                continue
        if not wanted:
            return
        rows = self.log.rows_of_topics(list(wanted), [CLASSES[c].topic for c in LIFE_EVENTS])
        if rows is None:
            return  # looked up one by one, as they are asked for
        found: dict[str, list[Life]] = {target: [] for target in wanted.values()}
        for row in rows:
            named = wanted.get(uuid.UUID(row[1]))
            if named is None:
                continue
            _record(found[named], row[0], self.log.decode(row))
        self._known.update(found)

    def of(self, kind: str, key: str) -> list[Life]:
        target = f"{kind}:{key}"
        found = self._known.get(target)
        if found is None:
            creation, removal = _CREATIONS[kind], _REMOVALS[kind]
            topics = (CLASSES[creation].topic, CLASSES[removal].topic)
            found = []
            for row in self.log.rows_at(self.views.history_positions(target)):
                if row[3] not in topics or row[1].replace("-", "") != key.replace("-", ""):
                    continue
                _record(found, row[0], self.log.decode(row))
            self._known[target] = found
        return found

    def at(self, kind: str, key: str, position: int, ahead: bool = False) -> Life | None:
        """The life of ``kind:key`` an event at ``position`` belongs to.

        An event between two lives belongs to the one that ended (a license
        removed with its pool is recorded after the pool's removal), unless
        ``ahead`` (a license added before the pool made for it). Before the
        first life, the first one.
        """
        lives = self.of(kind, key)
        if not lives:
            return None
        i = bisect.bisect_right([life.start for life in lives], position)
        if i == 0:
            return lives[0]
        life = lives[i - 1]
        if ahead and life.end is not None and life.end < position and i < len(lives):
            return lives[i]
        return life


class Names:
    """Names beside ids in history details, as they were at each entry's
    position, and what the reader may not see (R29, R14).

    ``visible``: the reader's visible groups, None for every group.
    """

    def __init__(
        self,
        d: DirectoryState,
        views: ViewStore,
        visible: frozenset[GroupId] | None,
        log: EventLog | None = None,
        lives: Lives | None = None,
    ) -> None:
        self.d = d
        self.views = views
        self.visible = visible
        self.lives = lives if lives is not None or log is None else Lives(log, views)
        self._states: dict[tuple[str, str], Any] = {}
        self._visibility: dict[tuple[str, str], bool | None] = {}
        #: actor -> the name shown for it (an audit log names the same few actors
        #: on every entry; users cannot be renamed)
        self.actors: dict[str, str] = {}

    def prefetch(self, events: Iterable[tuple[str, DomainEvent]]) -> None:
        """Find at once the lives of the pools and computers these (target, event)
        pairs name, rather than one lookup each as entries are made."""
        if self.lives is None:
            return
        named: set[tuple[str, str]] = set()
        for target, event in events:
            kind, _, key = target.partition(":")
            if kind in _CREATIONS:
                named.add((kind, key))
            for attribute, kind in (("pool_id", "pool"), ("computer_id", "computer")):
                value = getattr(event, attribute, None)
                if value is not None:
                    named.add((kind, str(value)))
        self.lives.load(named)

    def _sees(self, group: object) -> bool:
        return self.visible is None or group in self.visible

    def _state(self, kind: str, key: str) -> Any:
        found = self._states.get((kind, key), self)
        if found is self:
            if len(self._states) >= _MAX_STATES:  # bounded memory over a whole audit log
                self._states.clear()
            found = self._states[(kind, key)] = self.views.state(kind, key)
        return found

    def _seen(self, kind: str, key: str) -> bool | None:
        """Whether the reader sees a pool, computer or license where it is (or was
        last): from the views' columns, not its state (a pool's names every
        license of it); None when the views have no row of it."""
        k = (kind, key)
        if k in self._visibility:
            return self._visibility[k]
        if len(self._visibility) >= _MAX_STATES:  # bounded memory over a whole audit log
            self._visibility.clear()
        row, group = self.views.group_of(kind, key)
        found = self._visibility[k] = (
            None if not row else self._sees(None if group is None else GroupId(group))
        )
        return found

    def group(self, value: Any) -> tuple[Any, str | None]:
        try:
            gid = GroupId(value)
        except Exception:
            return value, None
        g = self.d.groups.get(gid)
        if not self._sees(gid):
            return None, None
        return value, g.name if g is not None else None

    def user(self, value: Any) -> tuple[Any, str | None]:
        try:
            u = self.d.users.get(UserId(value))
        except Exception:
            return value, None
        if u is None:
            return value, None
        if not self._sees(u.home_group):
            return None, None
        return value, u.name

    def entity(
        self, kind: str, value: Any, position: int = 0, ahead: bool = False
    ) -> tuple[Any, str | None]:
        """A pool or computer: its id and its name at ``position`` (0: its name now).

        A reader who sees every group needs no view row for visibility, and a
        life known names the object as it was: an audit log, which streams
        past the creations, reads nothing here.
        """
        if not value:
            return value, None
        key = str(value)
        if self.visible is not None:
            seen = self._seen(kind, key)
            if not seen:
                return (value, None) if seen is None else (None, None)
        if position and self.lives is not None:
            life = self.lives.at(kind, key, position, ahead)
            if life is not None:
                return value, life.name
        state = self._state(kind, key)
        return value, None if state is None else state.name

    def license(self, value: Any) -> Any:
        """A Public ID, or None when the license's pool lies outside the reader's groups."""
        if self.visible is None or not isinstance(value, str):
            return value
        return value if self._seen("license", value) else None

    def target(self, target: str, position: int = 0) -> str | None:
        """A history's target by name: a license by its Public ID, a pool or a
        computer by its name then (None when the reader may not see it)."""
        kind, _, key = target.partition(":")
        if kind == "license":
            return key
        if kind in ("pool", "computer"):
            return self.entity(kind, key, position)[1]
        return None

    def _tag_target(self, value: Any, position: int) -> Any:
        kind, _, key = str(value).partition(":")
        if kind == "license":
            return value if self.license(key) is not None else None
        if kind in ("pool", "computer"):
            return value if self._seen(kind, key) is not False else None
        return value

    def shown(self, raw: dict[str, Any], position: int = 0, ahead: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, raw_value in raw.items():
            value, name = raw_value, None
            named = True
            if value is None:
                named = key in GROUP_KEYS or key in ("user", "pool_id", "computer_id")
            elif key in GROUP_KEYS:
                value, name = self.group(value)
            elif key == "user":
                value, name = self.user(value)
            elif key == "pool_id":
                value, name = self.entity("pool", value, position, ahead)
            elif key == "computer_id":
                value, name = self.entity("computer", value, position)
            else:
                named = False
                if self.visible is not None:
                    value = self._hidden(key, value, position)
            out[key] = value
            if named:
                out[f"{key.removesuffix('_id')}_name"] = name
        return out

    def _hidden(self, key: str, value: Any, position: int) -> Any:
        """Other details that name an object: what the reader may not see goes."""
        if key == "public_id":
            return self.license(value)
        if key == "public_ids" and isinstance(value, list):
            return [p for p in value if self.license(p) is not None]
        if key == "seats_left" and isinstance(value, list):
            return [s for s in value if self.license(str(s).split(" ", 1)[0]) is not None]
        if key == "target":
            return self._tag_target(value, position)
        if key == "pools" and isinstance(value, list):
            return [p for p in value if self._seen("pool", str(p)) is not False]
        return value


def entry(
    d: DirectoryState,
    target: str,
    position: int,
    event: DomainEvent,
    names: Names,
    actor_name: Callable[[DirectoryState, str], str],
) -> HistoryEntry:
    """The one way an event becomes a history entry (histories and the audit log)."""
    actor = event.actor
    shown_actor = names.actors.get(actor)
    if shown_actor is None:
        if len(names.actors) >= _MAX_STATES:
            names.actors.clear()
        shown_actor = names.actors[actor] = actor_name(d, actor)
    raw = details(event)
    for secret in _SECRET_DETAILS.get(type(event), ()):
        if secret in raw:
            raw[secret] = HIDDEN
    return HistoryEntry(
        when=event.timestamp,
        actor=actor.removeprefix("user:"),
        actor_name=shown_actor,
        what=event_name(event),
        target=target,
        target_name=names.target(target, position),
        details=names.shown(raw, position, isinstance(event, LicenseAdded)),
        position=position,
    )


Bound = datetime | int | None


def check_bounds(**bounds: object) -> None:
    """``since``, ``until``, ``as_of``: timezone-aware datetimes or log positions."""
    for name, bound in bounds.items():
        if bound is not None and (
            isinstance(bound, bool)
            or not isinstance(bound, datetime | int)
            or (isinstance(bound, datetime) and bound.tzinfo is None)
        ):
            raise InvalidInput(f"{name} is a timezone-aware datetime or a log position")


def within(
    entries: list[HistoryEntry], since: Bound, until: Bound, as_of: Bound = None
) -> list[HistoryEntry]:
    """The entries from ``since`` to ``until`` (inclusive; times or positions),
    recorded by ``as_of`` (R30)."""

    def after(e: HistoryEntry, bound: Bound) -> bool:
        if bound is None:
            return True
        return e.position >= bound if isinstance(bound, int) else e.when >= bound

    def before(e: HistoryEntry, bound: Bound) -> bool:
        if bound is None:
            return True
        return e.position <= bound if isinstance(bound, int) else e.when <= bound

    if since is None and until is None and as_of is None:
        return entries
    return [e for e in entries if after(e, since) and before(e, until) and before(e, as_of)]


#: the events ``Lives.seen`` wants to be told of
LIFE_EVENTS = (PoolCreated, PoolRemoved, ComputerRegistered, ComputerRemoved)


__all__ = ["HIDDEN", "LIFE_EVENTS", "Lives", "Names", "check_bounds", "entry", "within"]
