"""esmc-licensing: event-sourced license management for a security management console.

Pools and licenses with seats, static groups and per-user permissions, branch
administrators who see only what was distributed to them, intake by key, and a
complete, replayable history of every change. See ``docs/`` and ``README.md``.
"""

# The names below are imported on first use (PEP 562), so that ``import
# esmc_licensing`` (and the command line, which imports a submodule) pays only for
# what it uses: no HTTP client, no Redis, no offline-file crypto, no Rich.
# ``from esmc_licensing import X`` works for every name in ``__all__``.

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - what type checkers and IDEs see
    from .adapters.accounts import InMemoryAccounts
    from .adapters.agents import InMemoryAgents
    from .adapters.alert_sinks import (
        AlertRefused,
        InMemoryAlertSink,
        SmtpAlertSink,
        WebhookAlertSink,
    )
    from .adapters.field_cipher import data_key_file
    from .adapters.memory import InMemoryActivationServer, ManualClock
    from .adapters.ports import AlertSink
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
        DataKeyMissing,
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
        SecretUnavailable,
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
    from .projections.runner import ViewUpdater, rebuild_views, run_projections
    from .projections.tables import PostgresViews, SQLiteViews, ViewStore, open_views
    from .projections.views import (
        Alert,
        ComputerView,
        Delivery,
        DeliveryReport,
        Forecast,
        GroupView,
        HistoryEntry,
        InstallerLicense,
        LicenseView,
        MoveImpact,
        PoolView,
        ProductView,
        RemovalResult,
        TargetResult,
        TaskView,
        UserView,
        Validity,
    )
    from .seals import HistoryProblem, HistoryReport, Receipt
    from .wiring import Adapters

#: exported name -> the module (relative to this package) that defines it
_LAZY: dict[str, str] = {
    "InMemoryAccounts": ".adapters.accounts",
    "data_key_file": ".adapters.field_cipher",
    "InMemoryAgents": ".adapters.agents",
    "InMemoryActivationServer": ".adapters.memory",
    "ManualClock": ".adapters.memory",
    "LicenseManagement": ".application",
    "AccountView": ".commands.accounts",
    "SourceSync": ".commands.accounts",
    "SyncFailure": ".commands.accounts",
    "SyncReport": ".commands.accounts",
    "AccountCompany": ".domain.account",
    "AccountSnapshot": ".domain.account",
    "AgentResult": ".domain.client_tasks",
    "TargetState": ".domain.client_tasks",
    "TaskKind": ".domain.client_tasks",
    "TaskOrder": ".domain.client_tasks",
    "AccountRejected": ".domain.credentials",
    "Credentials": ".domain.credentials",
    "AdapterUnavailable": ".domain.errors",
    "AlreadyExists": ".domain.errors",
    "ConcurrencyConflict": ".domain.errors",
    "ConfirmationRequired": ".domain.errors",
    "DataKeyMissing": ".domain.errors",
    "SecretUnavailable": ".domain.errors",
    "InvalidInput": ".domain.errors",
    "InvalidLicenseFile": ".domain.errors",
    "InvalidLicenseKey": ".domain.errors",
    "InvalidPublicId": ".domain.errors",
    "LicenseKeyRejected": ".domain.errors",
    "LicenseUnusable": ".domain.errors",
    "LicensingError": ".domain.errors",
    "NotFound": ".domain.errors",
    "OveruseRefused": ".domain.errors",
    "PermissionDenied": ".domain.errors",
    "PoolIsIndivisible": ".domain.errors",
    "UnsupportedAccount": ".domain.errors",
    "UnsupportedProduct": ".domain.errors",
    "LicenseFilter": ".domain.filters",
    "ComputerId": ".domain.ids",
    "GroupId": ".domain.ids",
    "LicenseKey": ".domain.ids",
    "PoolId": ".domain.ids",
    "PublicId": ".domain.ids",
    "TaskId": ".domain.ids",
    "UserId": ".domain.ids",
    "Status": ".domain.status",
    "license_status": ".domain.status",
    "AccountKind": ".domain.values",
    "CompanyAccess": ".domain.values",
    "Ema2AccountType": ".domain.values",
    "LicenseDetails": ".domain.values",
    "LicenseType": ".domain.values",
    "OverusePolicy": ".domain.values",
    "Permission": ".domain.values",
    "Policy": ".domain.values",
    "Source": ".domain.values",
    "StatusLevel": ".domain.values",
    "StatusReason": ".domain.values",
    "ViewUpdater": ".projections.runner",
    "rebuild_views": ".projections.runner",
    "run_projections": ".projections.runner",
    "PostgresViews": ".projections.tables",
    "SQLiteViews": ".projections.tables",
    "ViewStore": ".projections.tables",
    "open_views": ".projections.tables",
    "Alert": ".projections.views",
    "Delivery": ".projections.views",
    "DeliveryReport": ".projections.views",
    "Forecast": ".projections.views",
    "AlertRefused": ".adapters.alert_sinks",
    "InMemoryAlertSink": ".adapters.alert_sinks",
    "SmtpAlertSink": ".adapters.alert_sinks",
    "WebhookAlertSink": ".adapters.alert_sinks",
    "AlertSink": ".adapters.ports",
    "ComputerView": ".projections.views",
    "HistoryEntry": ".projections.views",
    "InstallerLicense": ".projections.views",
    "LicenseView": ".projections.views",
    "GroupView": ".projections.views",
    "MoveImpact": ".projections.views",
    "UserView": ".projections.views",
    "PoolView": ".projections.views",
    "ProductView": ".projections.views",
    "RemovalResult": ".projections.views",
    "TargetResult": ".projections.views",
    "TaskView": ".projections.views",
    "Validity": ".projections.views",
    "HistoryProblem": ".seals",
    "HistoryReport": ".seals",
    "Receipt": ".seals",
    "Adapters": ".wiring",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AgentResult",
    "Alert",
    "AlertRefused",
    "AlertSink",
    "Delivery",
    "DeliveryReport",
    "Forecast",
    "InMemoryAlertSink",
    "SmtpAlertSink",
    "WebhookAlertSink",
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
    "DataKeyMissing",
    "SecretUnavailable",
    "data_key_file",
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
    "PostgresViews",
    "SQLiteViews",
    "NotFound",
    "OverusePolicy",
    "OveruseRefused",
    "Permission",
    "PermissionDenied",
    "Policy",
    "PoolId",
    "PoolIsIndivisible",
    "GroupView",
    "MoveImpact",
    "PoolView",
    "PublicId",
    "Receipt",
    "Source",
    "Status",
    "StatusLevel",
    "StatusReason",
    "TaskId",
    "UnsupportedAccount",
    "UnsupportedProduct",
    "UserId",
    "UserView",
    "ViewUpdater",
    "ViewStore",
    "license_status",
    "open_views",
    "rebuild_views",
    "run_projections",
]
