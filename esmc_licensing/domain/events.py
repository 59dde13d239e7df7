"""Domain events: facts in the business's past tense, with who caused them.

Every event carries ``originator_id``, ``originator_version`` and ``timestamp``
(eventsourcing's domain event protocol) plus ``actor`` (R29). Each class is
registered under a stable topic name and a schema version; the mapper stores
the name, never the module path, so moving code never orphans history.
Upcasters turn the stored state of an older schema version into the current one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Final, TypeVar

import attrs

from .client_tasks import TaskKind
from .credentials import Credentials
from .filters import LicenseFilter
from .ids import ComputerId, GroupId, LicenseKey, PoolId, PublicId, TaskId, UserId
from .values import AccountKind, Ema2AccountType, LicenseType, Permission, Source

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


#: the aggregates events belong to; each event names one where it is declared
AGGREGATE_NAMES: Final = frozenset(
    {"directory", "pool", "license", "tags", "filters", "account", "computer", "task", "seals"}
)


@attrs.frozen
class EventType:
    cls: type[DomainEvent]
    topic: str
    version: int
    upcasters: dict[int, Upcaster]
    #: the aggregate whose ``evolve`` folds this event (and whose version it takes)
    aggregate: str


#: topic -> registration, and class -> registration
TOPICS: Final[dict[str, EventType]] = {}
CLASSES: Final[dict[type[Any], EventType]] = {}

E = TypeVar("E", bound="type[DomainEvent]")


def event(
    topic: str,
    version: int = 1,
    upcasters: dict[int, Upcaster] | None = None,
    *,
    aggregate: str,
) -> Callable[[E], E]:
    """Register an event class under a stable topic, with the aggregate it belongs to.

    ``upcasters[n]`` turns stored state of schema version n into version n + 1.
    Routing tables (which ``evolve`` folds the event, which views handle it)
    are built from ``aggregate``, so an event is never left out of one.
    """
    if aggregate not in AGGREGATE_NAMES:
        raise ValueError(f"{topic}: unknown aggregate {aggregate!r}")

    def register(cls: E) -> E:
        if topic in TOPICS:
            raise ValueError(f"event topic {topic!r} registered twice")
        missing = [n for n in range(1, version) if n not in (upcasters or {})]
        if missing:
            raise ValueError(f"{topic} v{version} lacks upcasters from versions {missing}")
        registration = EventType(cls, topic, version, dict(upcasters or {}), aggregate)
        TOPICS[topic] = registration
        CLASSES[cls] = registration
        return cls

    return register


USER_PREFIX: Final = "user:"
SYNC_ACTOR: Final = "sync"
VENDOR_ACTOR: Final = "vendor"
SYSTEM_ACTOR: Final = "system"


def user_actor(user: UserId) -> str:
    return f"{USER_PREFIX}{user}"


def agent_actor(agent: object) -> str:
    return f"agent:{agent}"


@attrs.frozen(kw_only=True)
class DomainEvent:
    """The fields every event has; ``__eq__``, ``__hash__`` and ``__repr__`` are
    written here once for all events instead of generated for each class (the
    event classes declare ``eq=False, repr=False``): compiling those methods for
    some fifty classes was most of this module's import time, which every
    process pays at start. They behave as attrs' own: equal when of the same
    class with equal fields, and a repr without the fields declared
    ``repr=False`` (secrets).
    """

    originator_id: uuid.UUID
    originator_version: int
    timestamp: datetime
    actor: str

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = _compared(self.__class__)
        return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        cls = self.__class__
        return hash((cls, *(getattr(self, n) for n in _compared(cls))))

    def __repr__(self) -> str:
        cls = self.__class__
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in _shown(cls))
        return f"{cls.__qualname__}({shown})"


#: per event class, the names of its fields compared by ``==`` / shown by ``repr``
_COMPARED: dict[type[Any], tuple[str, ...]] = {}
_SHOWN: dict[type[Any], tuple[str, ...]] = {}


def _compared(cls: type[Any]) -> tuple[str, ...]:
    names = _COMPARED.get(cls)
    if names is None:
        names = _COMPARED[cls] = tuple(a.name for a in attrs.fields(cls) if a.eq)
    return names


def _shown(cls: type[Any]) -> tuple[str, ...]:
    names = _SHOWN.get(cls)
    if names is None:
        names = _SHOWN[cls] = tuple(a.name for a in attrs.fields(cls) if a.repr)
    return names


# --- Directory: static groups, users, permission sets (R10, R11) ------------


@event("DirectoryInitialised", aggregate="directory")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class DirectoryInitialised(DomainEvent):
    all_group: GroupId
    administrator: UserId
    administrator_name: str
    console_token: str


@event("GroupCreated", aggregate="directory")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class GroupCreated(DomainEvent):
    group: GroupId
    name: str
    parent: GroupId


@event("UserCreated", aggregate="directory")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class UserCreated(DomainEvent):
    user: UserId
    name: str
    home_group: GroupId


@event("PermissionGranted", aggregate="directory")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class PermissionGranted(DomainEvent):
    user: UserId
    group: GroupId
    permission: Permission


@event("PermissionRevoked", aggregate="directory")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class PermissionRevoked(DomainEvent):
    """R11: the permission set a user was granted on a group, taken back."""

    user: UserId
    group: GroupId


# --- Pools (R5, R7, R13, R19) ------------------------------------------------


@event("PoolCreated", aggregate="pool")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class PoolCreated(DomainEvent):
    name: str
    group: GroupId
    source: Source
    indivisible: bool = False
    company: str | None = None


@event("LicenseJoinedPool", aggregate="pool")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class LicenseJoinedPool(DomainEvent):
    public_id: PublicId


@event("PoolMoved", aggregate="pool")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class PoolMoved(DomainEvent):
    from_group: GroupId
    to_group: GroupId


@event("PoolRemoved", aggregate="pool")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class PoolRemoved(DomainEvent):
    public_ids: tuple[PublicId, ...]


# --- Licenses (R4, R6, R8, R15, R18, R23, R27) --------------------------------


def _license_added_v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """v1 predates offline units and subunits: a v1 license had neither."""
    state.setdefault("offline_units", 0)
    state.setdefault("subunits", 0)
    return state


@event("LicenseAdded", version=2, upcasters={1: _license_added_v1_to_v2}, aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class LicenseAdded(DomainEvent):
    public_id: PublicId
    pool_id: PoolId
    source: Source
    license_type: LicenseType
    product: str
    product_code: str
    units: int
    offline_units: int
    subunits: int
    expires: date | None
    subscription: bool
    owner: str
    contact: str
    license_user: str
    registered: bool
    registration_url: str | None
    suspended: bool
    obsolete: bool
    used_units: int
    key: LicenseKey | None = attrs.field(default=None, repr=False)


@event("LicenseKeyResealed", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class LicenseKeyResealed(DomainEvent):
    """R32: the license's key stated again, so that the store holds it sealed
    with the current data key (``migrate-secrets``).

    Why an event and not an update: history is not rewritten; the older event
    keeps what it held (plain text in a store written before R32, or a
    ciphertext of an older key), and the state follows this one.
    """

    public_id: PublicId
    key: LicenseKey = attrs.field(repr=False)


@event("LicenseRemoved", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class LicenseRemoved(DomainEvent):
    public_id: PublicId
    pool_id: PoolId


@event("UnitsChangedByVendor", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class UnitsChangedByVendor(DomainEvent):
    """R6: only the vendor changes units; it is a fact from the vendor."""

    public_id: PublicId
    units: int
    previous: int


@event("ExpirationChanged", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class ExpirationChanged(DomainEvent):
    public_id: PublicId
    expires: date | None
    previous: date | None


@event("LicenseSuspended", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class LicenseSuspended(DomainEvent):
    public_id: PublicId


@event("LicenseUnsuspended", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class LicenseUnsuspended(DomainEvent):
    public_id: PublicId


@event("LicenseRegistered", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class LicenseRegistered(DomainEvent):
    public_id: PublicId


@event("LicenseObsoleted", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class LicenseObsoleted(DomainEvent):
    public_id: PublicId


@event("UsageReported", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class UsageReported(DomainEvent):
    """Usage the vendor reports, counted beside seats taken here."""

    public_id: PublicId
    used_units: int


@event("LicenseOverused", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class LicenseOverused(DomainEvent):
    public_id: PublicId
    used_units: int
    units: int


@event("LicenseBackWithinUnits", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class LicenseBackWithinUnits(DomainEvent):
    public_id: PublicId
    used_units: int
    units: int


# --- Tags (R28) -----------------------------------------------------------------


@event("TagCreated", aggregate="tags")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class TagCreated(DomainEvent):
    name: str


@event("TagDeleted", aggregate="tags")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class TagDeleted(DomainEvent):
    name: str


@event("TagAssigned", aggregate="tags")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class TagAssigned(DomainEvent):
    name: str
    target: str  # "pool:<uuid>", "license:<public id>" or "computer:<uuid>"


@event("TagUnassigned", aggregate="tags")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class TagUnassigned(DomainEvent):
    name: str
    target: str


# --- Saved filters (R8a) -----------------------------------------------------------


@event("FilterSaved", aggregate="filters")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class FilterSaved(DomainEvent):
    user: UserId
    name: str
    filter: LicenseFilter


@event("FilterDeleted", aggregate="filters")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class FilterDeleted(DomainEvent):
    user: UserId
    name: str


# --- Tamper evidence (R31) ---------------------------------------------------------


@event("HistorySealed", aggregate="seals")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class HistorySealed(DomainEvent):
    """Digests of stored events, so later changes to them can be detected.

    ``positions`` are notification ids; ``digests`` holds one 16-hex-digit
    digest per position, concatenated; ``chain`` links this seal to the one
    before it, so a seal cannot be dropped or edited unnoticed either.
    """

    positions: tuple[int, ...]
    digests: str
    chain: str


@event("SealingStarted", aggregate="directory")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class SealingStarted(DomainEvent):
    """From this event on, every save is sealed as it is recorded (R31).

    It belongs to the directory so that removing it leaves a gap in the
    directory's versions (which verification names): with it gone and the
    seals table emptied, a sealed store would otherwise pass for one that
    was never sealed. ``key_id`` names the key the first seal was made with.
    """

    key_id: str


# --- Connected accounts (R17, R18) ----------------------------------------------------


@event("AccountConnected", aggregate="account")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class AccountConnected(DomainEvent):
    """An administrator connected an account (or gave it new credentials).

    ``credentials`` is a secret: its repr hides the password and history
    details hide the field.
    """

    kind: AccountKind
    username: str
    credentials: Credentials = attrs.field(repr=False)
    account_type: Ema2AccountType | None = None


@event("AccountCredentialsResealed", aggregate="account")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class AccountCredentialsResealed(DomainEvent):
    """R32: the account's credentials stated again, sealed with the current
    data key (``migrate-secrets``); see ``LicenseKeyResealed``."""

    username: str
    credentials: Credentials = attrs.field(repr=False)


@event("AccountDisconnected", aggregate="account")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class AccountDisconnected(DomainEvent):
    username: str


@event("AccountSynchronized", aggregate="account")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class AccountSynchronized(DomainEvent):
    """A sync of the account recorded changes (a sync that changed nothing records nothing)."""

    added: int
    changed: int
    pools: tuple[PoolId, ...] = ()


# --- Computers, seats and client tasks (R20-R27) ---------------------------------


@event("ComputerRegistered", aggregate="computer")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class ComputerRegistered(DomainEvent):
    """R20. ``agent_id`` None: registered without an agent (known only by name, R26)."""

    computer_id: ComputerId
    name: str
    group: GroupId
    fingerprint: str | None
    agent_id: str | None
    products: tuple[str, ...]
    activated_outside: tuple[str, ...] = ()


@event("ComputerConnected", aggregate="computer")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class ComputerConnected(DomainEvent):
    """An agent check-in at ``at`` (R20, R26)."""

    computer_id: ComputerId
    at: datetime


@event("ProductInstalled", aggregate="computer")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class ProductInstalled(DomainEvent):
    computer_id: ComputerId
    product: str
    task_id: TaskId | None = None


@event("ProductActivated", aggregate="computer")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class ProductActivated(DomainEvent):
    """R21; ``reactivated``: by the unsuspension of its license (R27)."""

    computer_id: ComputerId
    product: str
    public_id: PublicId
    task_id: TaskId | None = None
    reactivated: bool = False


@event("ProductDeactivated", aggregate="computer")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class ProductDeactivated(DomainEvent):
    """R24, R25, R26; ``suspended``: by a suspension of its license, the seat kept (R27)."""

    computer_id: ComputerId
    product: str
    public_id: PublicId | None
    reason: str
    suspended: bool = False


@event("ComputerRemoved", aggregate="computer")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class ComputerRemoved(DomainEvent):
    """R25. ``seats_left``: "PUBLIC-ID product" of seats that stay used."""

    computer_id: ComputerId
    deactivated: bool
    seats_left: tuple[str, ...] = ()


@event("SeatTaken", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class SeatTaken(DomainEvent):
    """A seat (license, computer, product) taken on the License aggregate (R20, R23)."""

    public_id: PublicId
    computer_id: ComputerId
    product: str
    task_id: TaskId | None = None


@event("SeatReleased", aggregate="license")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class SeatReleased(DomainEvent):
    public_id: PublicId
    computer_id: ComputerId
    product: str
    reason: str


@event("ClientTaskCreated", aggregate="task")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class ClientTaskCreated(DomainEvent):
    """A client task and its targets; ``new_seats``: targets it took a new seat for."""

    task_id: TaskId
    kind: TaskKind
    user: UserId
    targets: tuple[ComputerId, ...]
    scope: tuple[GroupId, ...]
    public_id: PublicId | None = None
    product: str | None = None
    new_seats: tuple[ComputerId, ...] = ()


@event("TaskTargetsDelivered", aggregate="task")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class TaskTargetsDelivered(DomainEvent):
    task_id: TaskId
    computer_ids: tuple[ComputerId, ...]


@event("TaskTargetSucceeded", aggregate="task")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class TaskTargetSucceeded(DomainEvent):
    task_id: TaskId
    computer_id: ComputerId


@event("TaskTargetFailed", aggregate="task")
@attrs.frozen(kw_only=True, repr=False, eq=False)
class TaskTargetFailed(DomainEvent):
    task_id: TaskId
    computer_id: ComputerId
    reason: str


class Emitter:
    """Builds the events of one decision on one aggregate, numbering versions.

    A decision may emit several events on one aggregate; each needs the next
    version so that the store's uniqueness check catches a racing writer.
    """

    __slots__ = ("actor", "events", "now", "originator_id", "version")

    def __init__(self, originator_id: uuid.UUID, version: int, now: datetime, actor: str) -> None:
        self.originator_id = originator_id
        self.version = version
        self.now = now
        self.actor = actor
        self.events: list[DomainEvent] = []

    def __call__(self, cls: type[DomainEvent], **fields: Any) -> DomainEvent:
        self.version += 1
        ev = cls(
            originator_id=self.originator_id,
            originator_version=self.version,
            timestamp=self.now,
            actor=self.actor,
            **fields,
        )
        self.events.append(ev)
        return ev
