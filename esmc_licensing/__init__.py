"""esmc-licensing: event-sourced license management for a security management console.

Pools and licenses with seats, static groups and per-user permissions, branch
administrators who see only what was distributed to them, intake by key, and a
complete, replayable history of every change. See ``docs/`` and ``README.md``.
"""

from .adapters.memory import InMemoryActivationServer, ManualClock
from .application import LicenseManagement
from .domain.errors import (
    AdapterUnavailable,
    AlreadyExists,
    ConcurrencyConflict,
    ConfirmationRequired,
    InvalidInput,
    InvalidLicenseFile,
    InvalidLicenseKey,
    InvalidPublicId,
    LicenseKeyRejected,
    LicenseUnusable,
    LicensingError,
    NotFound,
    OveruseRefused,
    PermissionDenied,
    PoolIsIndivisible,
    UnsupportedAccount,
    UnsupportedProduct,
)
from .domain.filters import LicenseFilter
from .domain.ids import ComputerId, GroupId, LicenseKey, PoolId, PublicId, TaskId, UserId
from .domain.status import Status, license_status
from .domain.values import (
    AccountKind,
    CompanyAccess,
    Ema2AccountType,
    LicenseDetails,
    LicenseType,
    OverusePolicy,
    Permission,
    Policy,
    Source,
    StatusLevel,
    StatusReason,
)
from .projections.views import HistoryEntry, LicenseView, PoolView
from .wiring import Adapters

__all__ = [
    "AccountKind",
    "AdapterUnavailable",
    "Adapters",
    "AlreadyExists",
    "CompanyAccess",
    "ComputerId",
    "ConcurrencyConflict",
    "ConfirmationRequired",
    "Ema2AccountType",
    "GroupId",
    "HistoryEntry",
    "InMemoryActivationServer",
    "InvalidInput",
    "InvalidLicenseFile",
    "InvalidLicenseKey",
    "InvalidPublicId",
    "LicenseDetails",
    "LicenseFilter",
    "LicenseKey",
    "LicenseKeyRejected",
    "LicenseManagement",
    "LicenseType",
    "LicenseUnusable",
    "LicenseView",
    "LicensingError",
    "ManualClock",
    "NotFound",
    "OverusePolicy",
    "OveruseRefused",
    "Permission",
    "PermissionDenied",
    "Policy",
    "PoolId",
    "PoolIsIndivisible",
    "PoolView",
    "PublicId",
    "Source",
    "Status",
    "StatusLevel",
    "StatusReason",
    "TaskId",
    "UnsupportedAccount",
    "UnsupportedProduct",
    "UserId",
    "license_status",
]
