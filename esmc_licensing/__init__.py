"""esmc-licensing: event-sourced license management for a security management console.

Pools and licenses with seats, static groups and per-user permissions, branch
administrators who see only what was distributed to them, intake by key, and a
complete, replayable history of every change. See ``docs/`` and ``README.md``.
"""

from .adapters.accounts import InMemoryAccounts
from .adapters.agents import InMemoryAgents
from .adapters.memory import InMemoryActivationServer, ManualClock
from .application import LicenseManagement
from .commands.accounts import AccountView, SourceSync, SyncFailure, SyncReport
from .domain.account import AccountCompany, AccountSnapshot
from .domain.client_tasks import AgentResult, TargetState, TaskKind, TaskOrder
from .domain.credentials import AccountRejected, Credentials
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
from .projections.runner import ViewRunner, rebuild_views, run_projections
from .projections.store import MemoryViewStore, ViewStore, open_view_store
from .projections.views import (
    ComputerView,
    HistoryEntry,
    InstallerLicense,
    LicenseView,
    PoolView,
    ProductView,
    RemovalResult,
    TargetResult,
    TaskView,
    Validity,
)
from .seals import HistoryProblem, HistoryReport
from .wiring import Adapters

__all__ = [
    "AgentResult",
    "ComputerView",
    "InMemoryAgents",
    "InstallerLicense",
    "ProductView",
    "RemovalResult",
    "TargetResult",
    "TargetState",
    "TaskKind",
    "TaskOrder",
    "TaskView",
    "Validity",
    "AccountCompany",
    "AccountRejected",
    "AccountSnapshot",
    "AccountView",
    "Credentials",
    "InMemoryAccounts",
    "SourceSync",
    "SyncFailure",
    "SyncReport",
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
    "HistoryProblem",
    "HistoryReport",
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
    "MemoryViewStore",
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
    "ViewRunner",
    "ViewStore",
    "license_status",
    "open_view_store",
    "rebuild_views",
    "run_projections",
]
