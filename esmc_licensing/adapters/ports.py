"""The ports: what the application needs from the outside world.

Domain values in, domain values out: no dict or HTTP response crosses a port.
An implementation raises ``AdapterUnavailable`` when its service cannot be
reached or answers badly, and the refusals the rules name
(``LicenseKeyRejected``…) when the service says no.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from ..domain.ids import LicenseKey, PublicId
from ..domain.values import LicenseDetails
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
