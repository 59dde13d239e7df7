"""In-memory adapters: complete, deterministic test doubles.

They are this project's fakes and are meant for products' own test suites
too: the vendor keeps real state (units, usage, suspension, expiry), so a test
can change the vendor side and watch a sync pick it up.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from ..domain.credentials import Credentials
from ..domain.errors import AdapterUnavailable, InvalidInput, LicenseKeyRejected, NotFound
from ..domain.ids import LicenseKey, PublicId
from ..domain.values import LicenseDetails, LicenseType
from .ports import Clock

if TYPE_CHECKING:  # cryptography is imported on first use of the vendor's key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise InvalidInput("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise InvalidInput("a clock does not go back; advance by a positive amount")
        with self._lock:
            self._now = self._now + delta
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


class InMemoryActivationServer:
    """A vendor license server held in memory.

    ``issue`` creates a license and returns its key; the other methods change
    the vendor's side of a license the way the real vendor would.
    """

    def __init__(self, clock: Clock | None = None, *, seed: str = "esmc") -> None:
        self.clock: Clock = clock or ManualClock()
        self._seed = seed
        self._licenses: dict[PublicId, LicenseDetails] = {}
        self._keys: dict[str, PublicId] = {}
        self._fail_next = 0
        self._lock = threading.RLock()
        self.calls = 0
        #: (Public ID or None, device, product) of every deactivation asked for (R24)
        self.deactivations: list[tuple[PublicId | None, str, str]] = []

    # -- the vendor's side --------------------------------------------------

    def issue(
        self,
        *,
        public_id: str,
        product: str,
        units: int,
        license_type: LicenseType = LicenseType.BUSINESS,
        expires: date | None = None,
        subscription: bool = False,
        owner: str = "",
        contact: str = "",
        registered: bool = True,
        offline_units: int = 0,
        subunits: int = 0,
        license_user: str = "",
        product_code: str = "",
    ) -> str:
        """Create a license at the vendor and return its license key."""
        pid = PublicId(public_id)
        if units < 1:
            raise InvalidInput("a license has at least one unit")
        if expires is None and not subscription:
            raise InvalidInput("only a subscription may have no expiration date")
        with self._lock:
            if pid in self._licenses:
                raise InvalidInput(f"the vendor already issued {pid}")
            self._licenses[pid] = LicenseDetails(
                public_id=pid,
                product=product,
                units=units,
                license_type=license_type,
                product_code=product_code or _product_code(product),
                offline_units=offline_units,
                subunits=subunits,
                expires=expires,
                subscription=subscription,
                owner=owner,
                contact=contact,
                license_user=license_user,
                registered=registered,
                registration_url=None if registered else f"https://register.example/{pid}",
            )
            key = self._key_for(pid)
            self._keys[key] = pid
            return key

    def _key_for(self, pid: PublicId) -> str:
        digest = hashlib.sha256(f"{self._seed}:{pid}".encode()).digest()
        chars = "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:20])
        return "-".join(chars[i : i + 4] for i in range(0, 20, 4))

    def _change(self, public_id: str, **changes: object) -> None:
        pid = PublicId(public_id)
        with self._lock:
            if pid not in self._licenses:
                raise NotFound("license", pid)
            self._licenses[pid] = attrs.evolve(self._licenses[pid], **changes)  # type: ignore[arg-type]

    def report_usage(self, public_id: str, used_units: int) -> None:
        self._change(public_id, used_units=used_units)

    def suspend(self, public_id: str) -> None:
        self._change(public_id, suspended=True)

    def unsuspend(self, public_id: str) -> None:
        self._change(public_id, suspended=False)

    def renew(self, public_id: str, expires: date | None) -> None:
        self._change(public_id, expires=expires)

    def set_units(self, public_id: str, units: int) -> None:
        self._change(public_id, units=units)

    def register(self, public_id: str) -> None:
        self._change(public_id, registered=True, registration_url=None)

    def obsolete(self, public_id: str) -> None:
        self._change(public_id, obsolete=True)

    def fail_next(self, n: int = 1) -> None:
        """The next n calls raise ``AdapterUnavailable``, as if the server were down."""
        with self._lock:
            self._fail_next += n

    def key_of(self, public_id: str) -> str:
        """The key of an issued license (what the customer received by e-mail)."""
        pid = PublicId(public_id)
        if pid not in self._licenses:
            raise NotFound("license", pid)
        return self._key_for(pid)

    def details_of(self, public_id: str) -> LicenseDetails:
        pid = PublicId(public_id)
        with self._lock:
            if pid not in self._licenses:
                raise NotFound("license", pid)
            return self._licenses[pid]

    def _signing_key(self) -> Ed25519PrivateKey:
        # Derived from the seed, so files and keys are the same on every run;
        # cached on first use (a race only computes the same key twice). Built
        # on first use, not at construction: a server that never signs a file
        # never imports cryptography.
        key: Ed25519PrivateKey | None = self.__dict__.get("_offline_signing_key")
        if key is None:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            secret = hashlib.sha256(f"esmc-offline-file-key:{self._seed}".encode()).digest()
            key = Ed25519PrivateKey.from_private_bytes(secret)
            self.__dict__["_offline_signing_key"] = key
            self.__dict__["_offline_public_key"] = key.public_key()
        return key

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The vendor's Ed25519 public key, which verifies its offline license files.

        Deterministic: two servers with the same ``seed`` have the same key.
        """
        self._signing_key()
        public: Ed25519PublicKey = self.__dict__["_offline_public_key"]
        return public

    def offline_file(self, public_id: str, console_token: str) -> bytes:
        """An offline license file (``ESMC-LF/1``, R16) for one console installation.

        Signed with this vendor's key (see ``public_key``), issued at
        ``self.clock.now()``, carrying the license as the vendor holds it now.
        Raises ``NotFound`` for a Public ID the vendor never issued,
        ``InvalidLicenseFile`` for a subscription license (a subscription cannot
        produce an offline file) and ``InvalidInput`` for a malformed token.
        Not an ``ActivationServer`` call: ``fail_next`` does not affect it.
        """
        from ..domain.errors import InvalidLicenseFile
        from .offline_file import sign_offline_file

        pid = PublicId(public_id)
        with self._lock:
            details = self._licenses.get(pid)
        if details is None:
            raise NotFound("license", pid)
        if details.subscription:
            raise InvalidLicenseFile(
                f"license {pid} is a subscription, and a subscription license cannot "
                "produce an offline license file; add it through its account or license key"
            )
        return sign_offline_file(self._signing_key(), details, console_token, self.clock.now())

    @property
    def public_ids(self) -> list[PublicId]:
        return sorted(self._licenses)

    # -- the ActivationServer port ------------------------------------------

    def _call(self) -> None:
        with self._lock:
            self.calls += 1
            if self._fail_next > 0:
                self._fail_next -= 1
                raise AdapterUnavailable(
                    "the activation server is unavailable (simulated failure); try again later"
                )

    def verify_key(self, key: LicenseKey) -> LicenseDetails:
        self._call()
        with self._lock:
            pid = self._keys.get(key.reveal())
            if pid is None:
                raise LicenseKeyRejected(
                    f"the activation server does not know the license key ending in {key.last4}"
                )
            return self._licenses[pid]

    def deactivate(self, public_id: PublicId | None, device: str, product: str) -> None:
        """R24: remember the deactivation (``deactivations``); unknown ones are fine."""
        self._call()
        with self._lock:
            self.deactivations.append(
                (None if public_id is None else PublicId(public_id), device, product)
            )

    def license_details(self, public_id: PublicId) -> LicenseDetails:
        self._call()
        with self._lock:
            details = self._licenses.get(PublicId(public_id))
            if details is None:
                raise NotFound("license", public_id)
            return details

    # -- legacy username/password credentials (R2) ----------------------------

    def add_legacy_credentials(self, public_id: str, credentials: Credentials) -> None:
        """Let legacy ``credentials`` stand for an issued license (vendor side)."""
        pid = PublicId(public_id)
        with self._lock:
            if pid not in self._licenses:
                raise NotFound("license", pid)
            legacy: dict[tuple[str, str], PublicId] = self.__dict__.setdefault("_legacy", {})
            legacy[(credentials.username.casefold(), credentials.reveal_password())] = pid

    def convert_credentials(self, credentials: Credentials) -> LicenseKey:
        """The ``LegacyCredentialsConverter`` port: legacy credentials to a license key."""
        self._call()
        with self._lock:
            legacy: dict[tuple[str, str], PublicId] = self.__dict__.get("_legacy", {})
            pid = legacy.get((credentials.username.casefold(), credentials.reveal_password()))
            if pid is None:
                raise LicenseKeyRejected(
                    "the activation server does not know these legacy credentials "
                    f"(username {credentials.username!r})"
                )
            return LicenseKey(self._key_for(pid))


def _product_code(product: str) -> str:
    return "".join(w[0] for w in product.split() if w).upper()[:8] or "PRODUCT"


def days(n: int) -> timedelta:
    return timedelta(days=n)


# InMemoryAccounts lives beside the HTTP account clients; api.md names it here too.
from .accounts import InMemoryAccounts  # noqa: E402
from .agents import InMemoryAgents  # noqa: E402

__all__ = ["InMemoryAccounts", "InMemoryActivationServer", "InMemoryAgents", "ManualClock", "days"]
