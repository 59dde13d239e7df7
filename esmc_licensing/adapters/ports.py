"""The ports: what the application needs from the outside world.

Domain values in, domain values out: no dict or HTTP response crosses a port.
An implementation raises ``AdapterUnavailable`` when its service cannot be
reached or answers badly, and the refusals the rules name
(``LicenseKeyRejected``…) when the service says no.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..domain.account import AccountSnapshot
from ..domain.client_tasks import AgentResult, TaskOrder
from ..domain.credentials import Credentials
from ..domain.ids import LicenseKey, PublicId
from ..domain.values import AccountKind, LicenseDetails

if TYPE_CHECKING:  # the offline-file code (and its crypto) is imported only when used
    from .offline_file import OfflineLicense


@runtime_checkable
class Clock(Protocol):
    """Every recorded time comes from here (R29)."""

    def now(self) -> datetime:
        """A timezone-aware UTC datetime."""
        ...


@runtime_checkable
class ActivationServer(Protocol):
    """The vendor's license server (R15, R18)."""

    def verify_key(self, key: LicenseKey) -> LicenseDetails:
        """The license a key belongs to.

        Raises ``LicenseKeyRejected`` when the server does not know the key,
        ``AdapterUnavailable`` when it cannot be asked.
        """
        ...

    def license_details(self, public_id: PublicId) -> LicenseDetails:
        """Current details of a license (for the daily sync of key licenses)."""
        ...

    def deactivate(self, public_id: PublicId | None, device: str, product: str) -> None:
        """Remove a product's activation from a device (R24).

        ``public_id`` None: the product was activated outside this console or
        with a license it does not hold. ``device`` is the computer's hardware
        fingerprint (or its id when it has none). Deactivating what is not
        activated is not an error, so a retried deactivation is harmless.
        """
        ...


@runtime_checkable
class OfflineFileVerifier(Protocol):
    """Checks offline license files (R16).

    ``Ed25519OfflineFileVerifier`` (``esmc_licensing.adapters.offline_file``)
    implements it for the ``ESMC-LF/1`` format.
    """

    def verify(self, content: bytes, console_token: str, now: datetime) -> OfflineLicense:
        """What the file says, if it passes every check.

        Raises ``InvalidLicenseFile`` naming the first check that failed: size,
        shape, signature, license data, console token, issue time, expiration,
        subscription. Never records anything and never echoes the content.
        """
        ...


# -- accounts and legacy credentials (R2, R17, R18) -----------------------------


@runtime_checkable
class AccountService(Protocol):
    """The vendor's account services: EBA, EMA2 (MSP) and ELA (R17, R18).

    ``InMemoryAccounts`` (``esmc_licensing.adapters.accounts``) and
    ``HttpAccounts`` (``esmc_licensing.adapters.http``) implement it.
    """

    def fetch(self, kind: AccountKind, credentials: Credentials) -> AccountSnapshot:
        """Everything the account can read: its type, its companies and their licenses.

        Raises ``AccountRejected`` for credentials the service refuses and
        ``AdapterUnavailable`` when the service cannot be reached or answers
        badly (a partial or malformed answer is never returned in part).
        """
        ...


@runtime_checkable
class LegacyCredentialsConverter(Protocol):
    """The activation server's conversion of legacy username/password to a key (R2)."""

    def convert_credentials(self, credentials: Credentials) -> LicenseKey:
        """The license key the legacy credentials stand for.

        Raises ``LicenseKeyRejected`` when the server does not know them.
        """
        ...


# -- agents (R21, R24, R26) -------------------------------------------------------------


@runtime_checkable
class AgentTransport(Protocol):
    """Carries client tasks to management agents and their results back.

    ``InMemoryAgents`` (``esmc_licensing.adapters.agents``) and ``RedisAgents``
    (``esmc_licensing.adapters.redis_agents``) implement it.
    """

    def immediate_results(self, orders: Sequence[TaskOrder]) -> Sequence[AgentResult]:
        """Results known without waiting for an agent (an in-process transport's).

        Called before the task is saved, and again if the save is retried, so
        it must have no effect outside the process. A broker returns nothing:
        its results arrive later and are recorded with ``record_task_result``.
        """
        ...

    def deliver(self, orders: Sequence[TaskOrder]) -> None:
        """Hand the orders of a saved task to the agents.

        Raises ``AdapterUnavailable`` when they cannot be handed over; the
        targets are then recorded as failed and their seats freed.
        """
        ...


# -- alerts (R35) -----------------------------------------------------------------------


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go: a webhook, e-mail, or memory (``esmc_licensing.adapters.alert_sinks``).

    ``send`` may be called again with an alert it already received (delivery is
    at least once): receivers drop duplicates by ``alert["alert_id"]``. It
    raises ``AdapterUnavailable`` when the alert was not accepted; the alert is
    then offered again by the next delivery.
    """

    #: names the sink in the recorded delivery outcomes (stable across runs)
    name: str

    def send(self, alert: dict[str, object]) -> None:
        """Deliver one alert (``Alert.to_json()``: id, Public ID, reason, entered, when)."""
        ...
