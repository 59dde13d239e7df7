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


@attrs.frozen
class EventType:
    cls: type[DomainEvent]
    topic: str
    version: int
    upcasters: dict[int, Upcaster]


#: topic -> registration, and class -> registration
TOPICS: Final[dict[str, EventType]] = {}
CLASSES: Final[dict[type[Any], EventType]] = {}

E = TypeVar("E", bound="type[DomainEvent]")


def event(
    topic: str, version: int = 1, upcasters: dict[int, Upcaster] | None = None
) -> Callable[[E], E]:
    """Register an event class under a stable topic.

    ``upcasters[n]`` turns stored state of schema version n into version n + 1.
    """

    def register(cls: E) -> E:
        if topic in TOPICS:
            raise ValueError(f"event topic {topic!r} registered twice")
        missing = [n for n in range(1, version) if n not in (upcasters or {})]
        if missing:
            raise ValueError(f"{topic} v{version} lacks upcasters from versions {missing}")
        registration = EventType(cls, topic, version, dict(upcasters or {}))
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
    originator_id: uuid.UUID
    originator_version: int
    timestamp: datetime
    actor: str


# --- Directory: static groups, users, permission sets (R10, R11) ------------


@event("DirectoryInitialised")
@attrs.frozen(kw_only=True)
class DirectoryInitialised(DomainEvent):
    all_group: GroupId
    administrator: UserId
    administrator_name: str
    console_token: str


@event("GroupCreated")
@attrs.frozen(kw_only=True)
class GroupCreated(DomainEvent):
    group: GroupId
    name: str
    parent: GroupId


@event("UserCreated")
@attrs.frozen(kw_only=True)
class UserCreated(DomainEvent):
    user: UserId
    name: str
    home_group: GroupId


@event("PermissionGranted")
@attrs.frozen(kw_only=True)
class PermissionGranted(DomainEvent):
    user: UserId
    group: GroupId
    permission: Permission


# --- Pools (R5, R7, R13, R19) ------------------------------------------------


@event("PoolCreated")
@attrs.frozen(kw_only=True)
class PoolCreated(DomainEvent):
    name: str
    group: GroupId
    source: Source
    indivisible: bool = False
    company: str | None = None


@event("LicenseJoinedPool")
@attrs.frozen(kw_only=True)
class LicenseJoinedPool(DomainEvent):
    public_id: PublicId


@event("PoolMoved")
@attrs.frozen(kw_only=True)
class PoolMoved(DomainEvent):
    from_group: GroupId
    to_group: GroupId


@event("PoolRemoved")
@attrs.frozen(kw_only=True)
class PoolRemoved(DomainEvent):
    public_ids: tuple[PublicId, ...]


# --- Licenses (R4, R6, R8, R15, R18, R23, R27) --------------------------------


def _license_added_v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """v1 predates offline units and subunits: a v1 license had neither."""
    state.setdefault("offline_units", 0)
    state.setdefault("subunits", 0)
    return state


@event("LicenseAdded", version=2, upcasters={1: _license_added_v1_to_v2})
@attrs.frozen(kw_only=True)
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


@event("LicenseRemoved")
@attrs.frozen(kw_only=True)
class LicenseRemoved(DomainEvent):
    public_id: PublicId
    pool_id: PoolId


@event("UnitsChangedByVendor")
@attrs.frozen(kw_only=True)
class UnitsChangedByVendor(DomainEvent):
    """R6: only the vendor changes units; it is a fact from the vendor."""

    public_id: PublicId
    units: int
    previous: int


@event("ExpirationChanged")
@attrs.frozen(kw_only=True)
class ExpirationChanged(DomainEvent):
    public_id: PublicId
    expires: date | None
    previous: date | None


@event("LicenseSuspended")
@attrs.frozen(kw_only=True)
class LicenseSuspended(DomainEvent):
    public_id: PublicId


@event("LicenseUnsuspended")
@attrs.frozen(kw_only=True)
class LicenseUnsuspended(DomainEvent):
    public_id: PublicId


@event("LicenseRegistered")
@attrs.frozen(kw_only=True)
class LicenseRegistered(DomainEvent):
    public_id: PublicId


@event("LicenseObsoleted")
@attrs.frozen(kw_only=True)
class LicenseObsoleted(DomainEvent):
    public_id: PublicId


@event("UsageReported")
@attrs.frozen(kw_only=True)
class UsageReported(DomainEvent):
    """Usage the vendor reports, counted beside seats taken here."""

    public_id: PublicId
    used_units: int


@event("LicenseOverused")
@attrs.frozen(kw_only=True)
class LicenseOverused(DomainEvent):
    public_id: PublicId
    used_units: int
    units: int


@event("LicenseBackWithinUnits")
@attrs.frozen(kw_only=True)
class LicenseBackWithinUnits(DomainEvent):
    public_id: PublicId
    used_units: int
    units: int


# --- Tags (R28) -----------------------------------------------------------------


@event("TagCreated")
@attrs.frozen(kw_only=True)
class TagCreated(DomainEvent):
    name: str


@event("TagDeleted")
@attrs.frozen(kw_only=True)
class TagDeleted(DomainEvent):
    name: str


@event("TagAssigned")
@attrs.frozen(kw_only=True)
class TagAssigned(DomainEvent):
    name: str
    target: str  # "pool:<uuid>", "license:<public id>" or "computer:<uuid>"


@event("TagUnassigned")
@attrs.frozen(kw_only=True)
class TagUnassigned(DomainEvent):
    name: str
    target: str


# --- Saved filters (R8a) -----------------------------------------------------------


@event("FilterSaved")
@attrs.frozen(kw_only=True)
class FilterSaved(DomainEvent):
    user: UserId
    name: str
    filter: LicenseFilter


@event("FilterDeleted")
@attrs.frozen(kw_only=True)
class FilterDeleted(DomainEvent):
    user: UserId
    name: str


# --- Tamper evidence (R31) ---------------------------------------------------------


@event("HistorySealed")
@attrs.frozen(kw_only=True)
class HistorySealed(DomainEvent):
    """Digests of stored events, so later changes to them can be detected.

    ``positions`` are notification ids; ``digests`` holds one 16-hex-digit
    digest per position, concatenated; ``chain`` links this seal to the one
    before it, so a seal cannot be dropped or edited unnoticed either.
    """

    positions: tuple[int, ...]
    digests: str
    chain: str


# --- Connected accounts (R17, R18) ----------------------------------------------------


@event("AccountConnected")
@attrs.frozen(kw_only=True)
class AccountConnected(DomainEvent):
    """An administrator connected an account (or gave it new credentials).

    ``credentials`` is a secret: its repr hides the password and history
    details hide the field.
    """

    kind: AccountKind
    username: str
    credentials: Credentials = attrs.field(repr=False)
    account_type: Ema2AccountType | None = None


@event("AccountDisconnected")
@attrs.frozen(kw_only=True)
class AccountDisconnected(DomainEvent):
    username: str


@event("AccountSynchronized")
@attrs.frozen(kw_only=True)
class AccountSynchronized(DomainEvent):
    """A sync of the account recorded changes (a sync that changed nothing records nothing)."""

    added: int
    changed: int
    pools: tuple[PoolId, ...] = ()


# --- Computers, seats and client tasks (R20-R27) ---------------------------------


@event("ComputerRegistered")
@attrs.frozen(kw_only=True)
class ComputerRegistered(DomainEvent):
    """R20. ``agent_id`` None: registered without an agent (known only by name, R26)."""

    computer_id: ComputerId
    name: str
    group: GroupId
    fingerprint: str | None
    agent_id: str | None
    products: tuple[str, ...]
    activated_outside: tuple[str, ...] = ()


@event("ComputerConnected")
@attrs.frozen(kw_only=True)
class ComputerConnected(DomainEvent):
    """An agent check-in at ``at`` (R20, R26)."""

    computer_id: ComputerId
    at: datetime


@event("ProductInstalled")
@attrs.frozen(kw_only=True)
class ProductInstalled(DomainEvent):
    computer_id: ComputerId
    product: str
    task_id: TaskId | None = None


@event("ProductActivated")
@attrs.frozen(kw_only=True)
class ProductActivated(DomainEvent):
    """R21; ``reactivated``: by the unsuspension of its license (R27)."""

    computer_id: ComputerId
    product: str
    public_id: PublicId
    task_id: TaskId | None = None
    reactivated: bool = False


@event("ProductDeactivated")
@attrs.frozen(kw_only=True)
class ProductDeactivated(DomainEvent):
    """R24, R25, R26; ``suspended``: by a suspension of its license, the seat kept (R27)."""

    computer_id: ComputerId
    product: str
    public_id: PublicId | None
    reason: str
    suspended: bool = False


@event("ComputerRemoved")
@attrs.frozen(kw_only=True)
class ComputerRemoved(DomainEvent):
    """R25. ``seats_left``: "PUBLIC-ID product" of seats that stay used."""

    computer_id: ComputerId
    deactivated: bool
    seats_left: tuple[str, ...] = ()


@event("SeatTaken")
@attrs.frozen(kw_only=True)
class SeatTaken(DomainEvent):
    """A seat (license, computer, product) taken on the License aggregate (R20, R23)."""

    public_id: PublicId
    computer_id: ComputerId
    product: str
    task_id: TaskId | None = None


@event("SeatReleased")
@attrs.frozen(kw_only=True)
class SeatReleased(DomainEvent):
    public_id: PublicId
    computer_id: ComputerId
    product: str
    reason: str


@event("ClientTaskCreated")
@attrs.frozen(kw_only=True)
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


@event("TaskTargetsDelivered")
@attrs.frozen(kw_only=True)
class TaskTargetsDelivered(DomainEvent):
    task_id: TaskId
    computer_ids: tuple[ComputerId, ...]


@event("TaskTargetSucceeded")
@attrs.frozen(kw_only=True)
class TaskTargetSucceeded(DomainEvent):
    task_id: TaskId
    computer_id: ComputerId


@event("TaskTargetFailed")
@attrs.frozen(kw_only=True)
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
