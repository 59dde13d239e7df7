"""The one fold of the views: per-event handlers over a small storage interface.

Live updates after a save, catch-up with other processes' writes, the
separate runner, a rebuild and a replay "as of" a past moment all apply
events through :func:`apply`, writing to a :class:`Storage` (get an entity,
put it, tag and untag, record an audit reference). Entity states are folded
with the domain's own ``evolve`` -- the very function the command side
decides on -- so a view cannot disagree with the deciders about what an
event means. Handlers are chosen by the aggregate each event declares
(``@event(..., aggregate=...)``); ``tests/test_routing.py`` fails when an
aggregate has no handler here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, Protocol

import attrs

from ..aggregates import KIND_OF
from ..domain.events import (
    CLASSES,
    ComputerRemoved,
    DomainEvent,
    LicenseJoinedPool,
    LicenseRemoved,
    PoolRemoved,
    ProductActivated,
    ProductDeactivated,
    SeatReleased,
    SeatTaken,
    TagAssigned,
    TagDeleted,
    TagUnassigned,
)
from . import alerts
from .tables import TABLES


class Storage(Protocol):
    """What the fold writes to; :class:`~.tables.ViewBatch` is the implementation.

    ``evolved(event, before)`` is ``evolve(before, event)`` when the command
    side already computed it from that very state object (an application's
    own save: its decision folded each event once), else None.
    """

    def get(self, kind: str, key: str) -> Any | None: ...
    def put(self, kind: str, key: str, state: Any) -> None: ...
    def evolved(self, event: Any, before: Any) -> Any | None: ...
    def ref(self, target: str, position: int) -> None: ...
    def tag(self, target: str, name: str) -> None: ...
    def untag(self, target: str, name: str) -> None: ...
    def untag_all(self, target: str) -> None: ...
    def drop_tag(self, name: str) -> None: ...


def pool_target(pool_id: object) -> str:
    return f"pool:{pool_id}"


def license_target(public_id: object) -> str:
    return f"license:{public_id}"


def computer_target(computer_id: object) -> str:
    return f"computer:{computer_id}"


def task_target(task_id: object) -> str:
    return f"task:{task_id}"


_ENTITY_KINDS = frozenset({"license", "pool", "computer", "task", "filters", "account"})


def entity_key(event: DomainEvent) -> tuple[str, str] | None:
    """The view row an event changes: (kind, key), or None for the singletons."""
    kind = KIND_OF[type(event)].name
    if kind not in _ENTITY_KINDS:
        return None
    if kind == "license":
        return kind, str(event.public_id)  # type: ignore[attr-defined]
    if kind == "filters":
        return kind, str(event.user)  # type: ignore[attr-defined]
    return kind, str(event.originator_id)


def _key_of(kind: str) -> Callable[[Any], str]:
    """How an event of an aggregate kind names its row (as :func:`entity_key`)."""
    if kind == "license":
        return lambda e: str(e.public_id)
    if kind == "filters":
        return lambda e: str(e.user)
    return lambda e: str(e.originator_id)


#: event class -> (row kind, its key, the row's initial state, the aggregate's evolve),
#: decided once per class rather than at each event
_ROWS: dict[type, tuple[str, Callable[[Any], str], Callable[[str], Any], Callable[..., Any]]] = {
    cls: (kind.name, _key_of(kind.name), TABLES[kind.name].initial, kind.evolve)
    for cls, kind in KIND_OF.items()
    if kind.name in _ENTITY_KINDS
}

_SEAT_EVENTS = (SeatTaken, SeatReleased)
_PRODUCT_EVENTS = (ProductActivated, ProductDeactivated)


def _evolve_row(s: Storage, e: Any) -> tuple[str, Any, Any]:
    """Fold an event into its entity's row with the aggregate's own ``evolve``;
    returns (key, state before, state after)."""
    kind, key_of, initial, evolve = _ROWS[type(e)]
    key = key_of(e)
    before = s.get(kind, key) or initial(key)
    after = s.evolved(e, before)
    if after is None:
        after = evolve(before, e)
    s.put(kind, key, after)
    return key, before, after


def _license(s: Storage, position: int, e: Any) -> None:
    key, _, _ = _evolve_row(s, e)
    target = license_target(key)
    s.ref(target, position)
    if isinstance(e, _SEAT_EVENTS):
        s.ref(computer_target(e.computer_id), position)
    elif isinstance(e, LicenseRemoved):
        s.untag_all(target)


def _pool(s: Storage, position: int, e: Any) -> None:
    key, before, after = _evolve_row(s, e)
    target = pool_target(key)
    s.ref(target, position)
    # another license joining does not affect this one's history (R29)
    members = (
        {e.public_id} if isinstance(e, LicenseJoinedPool) else before.public_ids | after.public_ids
    )
    for p in sorted(members):
        s.ref(license_target(p), position)
    if isinstance(e, PoolRemoved):
        s.untag_all(target)


def _tags(s: Storage, position: int, e: Any) -> None:
    if isinstance(e, (TagAssigned, TagUnassigned)):
        if isinstance(e, TagAssigned):
            s.tag(e.target, e.name)
        else:
            s.untag(e.target, e.name)
        s.ref(e.target, position)
        if e.target.startswith("pool:"):
            p = s.get("pool", e.target[5:])
            if p is not None:
                for pid in sorted(p.public_ids):
                    s.ref(license_target(pid), position)
    elif isinstance(e, TagDeleted):
        s.drop_tag(e.name)
    s.ref(f"tag:{e.name}", position)


def _computer(s: Storage, position: int, e: Any) -> None:
    key, _, _ = _evolve_row(s, e)
    target = computer_target(key)
    s.ref(target, position)
    if isinstance(e, _PRODUCT_EVENTS) and e.public_id:
        s.ref(license_target(e.public_id), position)
    elif isinstance(e, ComputerRemoved):
        s.untag_all(target)


def _task(s: Storage, position: int, e: Any) -> None:
    key, _, _ = _evolve_row(s, e)
    s.ref(task_target(key), position)


def _filters(s: Storage, position: int, e: Any) -> None:
    key, _, _ = _evolve_row(s, e)
    s.ref(f"user:{key}", position)


def _account(s: Storage, position: int, e: Any) -> None:
    key, _, _ = _evolve_row(s, e)
    s.ref(f"account:{key}", position)


def _directory(s: Storage, position: int, e: Any) -> None:
    # groups, users and permissions are read from the directory aggregate
    # itself (snapshotted); the views only index its history
    s.ref("directory", position)


def _seals(s: Storage, position: int, e: Any) -> None:
    """Seals are read from their aggregate; they name no target (R31)."""


#: aggregate name -> the handler of its events
HANDLERS: Mapping[str, Callable[[Storage, int, Any], None]] = {
    "license": _license,
    "pool": _pool,
    "tags": _tags,
    "computer": _computer,
    "task": _task,
    "filters": _filters,
    "account": _account,
    "directory": _directory,
    "seals": _seals,
}

_BY_CLASS: dict[type, Callable[[Storage, int, Any], None]] = {
    cls: HANDLERS[kind.name] for cls, kind in KIND_OF.items()
}


_before_event = alerts.before_event
_after_event = alerts.after_event


def apply(storage: Storage, position: int, event: DomainEvent) -> None:
    """Fold one event, at its log position, into the views (and the alerts, R35)."""
    alerting: alerts.AlertStorage = storage  # type: ignore[assignment]
    _before_event(alerting, event)
    _BY_CLASS[type(event)](storage, position, event)
    _after_event(alerting, position, event)


# -- what a history shows of an event (R29) ---------------------------------------------

_HIDDEN_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "actor", "key", "credentials", "password"}
)


def event_name(event: DomainEvent) -> str:
    return CLASSES[type(event)].topic


_PLAIN = frozenset({type(None), bool, int, float, str})


def detail_value(value: Any) -> Any:
    """One detail as a JSON value of its own type (R29): numbers and booleans stay
    what they are, dates and times are ISO text, enums their names, ids text."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    convert = _CONVERTERS.get(kind)
    if convert is None:
        convert = _CONVERTERS[kind] = _converter(kind)
    return convert(value)


def _converter(kind: type) -> Callable[[Any], Any]:
    """How :func:`detail_value` shows a value of this type: decided once per type,
    not per value (an audit export shows millions)."""
    if issubclass(kind, enum.IntEnum):
        return lambda v: v.name
    if issubclass(kind, str):  # PublicId, a StrEnum: their text
        return (lambda v: v.value) if issubclass(kind, enum.Enum) else str
    if issubclass(kind, enum.Enum):
        return lambda v: v.value
    if issubclass(kind, datetime | date):
        return kind.isoformat
    if issubclass(kind, tuple | list):
        return lambda v: [detail_value(x) for x in v]
    if issubclass(kind, set | frozenset):
        return lambda v: sorted((detail_value(x) for x in v), key=str)
    if attrs.has(kind):
        names = tuple(a.name for a in attrs.fields(kind))
        return lambda v: {n: detail_value(getattr(v, n)) for n in names}
    return str


_CONVERTERS: dict[type, Callable[[Any], Any]] = {}
#: event class -> the names of the fields its history details show
_DETAILS: dict[type, tuple[str, ...]] = {}


def details(event: DomainEvent) -> dict[str, Any]:
    kind = type(event)
    names = _DETAILS.get(kind)
    if names is None:
        names = _DETAILS[kind] = tuple(
            a.name for a in attrs.fields(kind) if a.name not in _HIDDEN_FIELDS
        )
    return {n: detail_value(getattr(event, n)) for n in names}


__all__ = [
    "HANDLERS",
    "Storage",
    "apply",
    "computer_target",
    "details",
    "entity_key",
    "event_name",
    "license_target",
    "pool_target",
    "task_target",
]
