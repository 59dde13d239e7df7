"""The immutable values that queries return (api.md). None carries a license key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import attrs

from ..domain.client_tasks import TargetState, TaskKind
from ..domain.ids import ComputerId, GroupId, LicenseKey, PoolId, PublicId, TaskId, UserId
from ..domain.status import Status
from ..domain.values import LicenseType, Permission, Source, StatusReason


@attrs.frozen
class LicenseView:
    public_id: PublicId
    pool_id: PoolId
    group: GroupId
    license_type: LicenseType
    product: str
    units: int
    used_units: int
    offline_units: int
    subunits: int
    expires: date | None
    subscription: bool
    owner: str
    contact: str
    source: Source
    tags: frozenset[str]
    status: Status
    product_code: str = ""
    license_user: str = ""
    key_last4: str | None = None
    """Only the last four characters of the key (R2), for recognising it; None
    without a key, ``""`` when the key is recorded but its data key is not
    configured here (R32: forgotten or missing)."""
    forecast: Forecast | None = None
    """When its used units will reach its units (R36), as forecast on the day asked about."""


@attrs.frozen
class PoolView:
    pool_id: PoolId
    name: str
    group: GroupId
    source: Source
    tags: frozenset[str]
    public_ids: tuple[PublicId, ...]
    indivisible: bool = False
    company: str | None = None


@attrs.frozen
class GroupView:
    """A static group (R10); ``path`` names it from All down, e.g. ``All/San Diego``."""

    group_id: GroupId
    name: str
    parent: GroupId | None
    path: str


@attrs.frozen
class UserView:
    """A user (R10, R11): ``grants`` are the permission sets granted on each
    group; ``effective`` is what the user holds on every group those cover
    (a grant covers the group's subgroups; sets add up)."""

    user_id: UserId
    name: str
    home_group: GroupId
    grants: Mapping[GroupId, Permission]
    effective: Mapping[GroupId, Permission]


@attrs.frozen
class MoveImpact:
    """What moving pools would change (R37), computed before anything is recorded.

    ``gains`` and ``loses``: per user, the licenses they would start or stop
    seeing (users whose sight does not change are left out).
    ``activations_outside``: per computer, the moved licenses its products are
    activated with whose new group is neither the computer's group nor above
    it, so the activation would use a license from outside its group.
    """

    to_group: GroupId
    pool_ids: tuple[PoolId, ...]
    gains: Mapping[UserId, frozenset[PublicId]]
    loses: Mapping[UserId, frozenset[PublicId]]
    activations_outside: Mapping[ComputerId, frozenset[PublicId]]

    @property
    def changes_nothing(self) -> bool:
        return not (self.gains or self.loses or self.activations_outside)


@attrs.frozen
class HistoryEntry:
    """One event of a history (R29). ``actor`` is the user's id (or ``system``,
    ``sync``, an agent…), ``actor_name`` the name to show; ``target`` names the
    object the way the audit index does (``license:3AB-C12-D34``, ``pool:<id>``,
    ``computer:<id>``), ``target_name`` its Public ID or name (None when the
    reader may not see it)."""

    when: datetime
    actor: str
    what: str
    target: str
    #: JSON-typed values (R29): ints, bools, ISO dates, names beside ids
    details: Mapping[str, Any]
    position: int = 0
    actor_name: str = ""
    target_name: str | None = None


# -- computers and client tasks (R20-R26) ------------------------------------------


@attrs.frozen
class Validity:
    """R9: how long the license a product is activated with is valid.

    ``valid_until`` None with ``subscription`` True: an open-ended subscription.
    """

    valid_until: date | None
    subscription: bool = False

    @property
    def open_ended(self) -> bool:
        return self.valid_until is None

    def __str__(self) -> str:
        if self.valid_until is None:
            return "open-ended subscription" if self.subscription else "open-ended"
        return f"valid until {self.valid_until.isoformat()}"


@attrs.frozen
class ProductView:
    """One installed product; ``public_id`` None with ``activated``: activated outside
    this console. ``validity`` None when the console does not hold its license."""

    product: str
    public_id: PublicId | None
    activated: bool
    validity: Validity | None
    suspended: bool = False
    """Deactivated because its license is suspended; unsuspension reactivates it (R27)."""


@attrs.frozen
class ComputerView:
    computer_id: ComputerId
    name: str
    group: GroupId
    fingerprint: str | None
    last_connected: datetime | None
    products: tuple[ProductView, ...]
    managed: bool = True
    registered_at: datetime | None = None
    tags: frozenset[str] = frozenset()


@attrs.frozen
class TargetResult:
    state: TargetState
    reason: str | None = None


@attrs.frozen
class TaskView:
    task_id: TaskId
    kind: TaskKind
    results: Mapping[ComputerId, TargetResult]
    public_id: PublicId | None = None
    product: str | None = None
    created_at: datetime | None = None


@attrs.frozen
class RemovalResult:
    """R25: ``warning`` is set when a seat stays used and can no longer be freed from here."""

    computer_id: ComputerId
    warning: str | None = None
    seats_left: tuple[tuple[PublicId, str], ...] = ()


@attrs.frozen
class InstallerLicense:
    """R22: a license for an all-in-one agent installer configuration.

    ``key`` is a ``LicenseKey``: its ``str`` and ``repr`` show only the last four
    characters; ``configuration()`` reveals it for the installer file only.
    """

    public_id: PublicId
    product: str
    key: LicenseKey = attrs.field(repr=False)
    expires: date | None = None

    def configuration(self) -> dict[str, str]:
        return {
            "product": self.product,
            "public_id": str(self.public_id),
            "license_key": self.key.reveal(),
        }


# -- alerts and forecasts (R35, R36) --------------------------------------------------


@attrs.frozen
class Delivery:
    """What became of an alert at one sink: ``outcome`` is ``delivered`` or
    ``failed`` (``detail`` says why), after ``attempts`` tries."""

    sink: str
    outcome: str
    attempts: int
    at: datetime
    detail: str | None = None


@attrs.frozen
class Alert:
    """A license entering (``entered``) or leaving one condition of R35.

    ``alert_id`` is the same for the same crossing however often the views
    are rebuilt or the alert is delivered: receivers drop duplicates by it.
    ``when`` is the moment of the save that caused it, or the start (UTC) of
    the day the calendar did.
    """

    alert_id: str
    public_id: PublicId
    reason: StatusReason
    entered: bool
    when: datetime
    deliveries: Mapping[str, Delivery] = attrs.field(factory=dict)
    position: int = 0

    def to_json(self) -> dict[str, object]:
        """The alert as sent to receivers and printed by ``alerts --json``."""
        return {
            "alert_id": self.alert_id,
            "public_id": str(self.public_id),
            "reason": self.reason.name,
            "entered": self.entered,
            "when": self.when.isoformat(),
        }


@attrs.frozen
class DeliveryReport:
    """What one ``deliver_alerts()`` did: per sink, alerts delivered and failed."""

    delivered: Mapping[str, int]
    failed: Mapping[str, int]

    @property
    def ok(self) -> bool:
        return not any(self.failed.values())


@attrs.frozen
class Forecast:
    """R36: when the license's used units will reach its units, on the trend of
    its recorded usage (see ``docs/alerts.md`` for the method).

    ``trend_per_day`` is None and ``enough_data`` False when the history is
    shorter than the minimum; ``depletion`` is None when the trend is flat or
    falling, or reaches the units only after the license expires.
    """

    public_id: PublicId
    units: int
    used_units: int
    trend_per_day: float | None
    depletion: date | None
    expires: date | None
    based_on_days: int
    enough_data: bool

    def __str__(self) -> str:
        if not self.enough_data:
            return "not enough data"
        if self.depletion is None:
            return "no depletion"
        return f"depleted {self.depletion.isoformat()}"
