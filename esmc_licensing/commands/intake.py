"""Adding licenses: by key (R15) and by offline license file (R16)."""

from __future__ import annotations

from ..domain import directory, license, pool
from ..domain.errors import (
    AdapterUnavailable,
    InvalidLicenseFile,
    UnsupportedProduct,
)
from ..domain.events import user_actor
from ..domain.ids import (
    LicenseKey,
    PublicId,
    UserId,
    pool_id_for,
)
from ..domain.values import LicenseDetails, Source
from ..handler import Handler
from ..service import Decision, log


class IntakeCommands(Handler):
    # -- intake (R12, R15) ------------------------------------------------------

    def add_license_key(self, actor: UserId, key: str) -> PublicId:
        """Add a license by its key (R15); returns its Public ID.

        The key's shape is checked before anything is asked; the activation
        server is asked before anything is recorded. A license already present
        records nothing.
        """
        license_key = LicenseKey(key)
        uid = self._actor(actor)
        directory.require_administrator(self._directory(), uid, "adding licenses")
        server = self.adapters.activation_server
        details = self._ask("the activation server", lambda: server.verify_key(license_key))
        return self._intake(uid, details, Source.LICENSE_KEY, license_key)

    def add_offline_license_file(self, actor: UserId, content: bytes) -> PublicId:
        """Add a license from a signed offline license file (R16).

        The file must verify with the vendor's public key, be generated for
        this installation's ``console_token``, not be issued in the future,
        not be expired and not be a subscription; otherwise
        ``InvalidLicenseFile`` names the check that failed.
        """
        uid = self._actor(actor)
        directory.require_administrator(self._directory(), uid, "adding licenses")
        if not isinstance(content, (bytes, bytearray, memoryview)):
            raise InvalidLicenseFile("offline license file refused: the content must be bytes")
        verifier = self.adapters.offline_verifier
        if verifier is None:
            raise AdapterUnavailable(
                "no offline license file verifier is configured: pass "
                "Adapters(offline_verifier=Ed25519OfflineFileVerifier(vendor_public_key))"
            )
        offline = verifier.verify(bytes(content), self.console_token, self._now())
        return self._intake(uid, offline.details, Source.OFFLINE_FILE, None)

    def _check_manageable(self, details: LicenseDetails) -> None:
        if details.product not in self.policy.manageable_products:
            raise UnsupportedProduct(
                f"license {details.public_id} is for {details.product!r}, a product this "
                "console cannot manage"
            )

    def _intake(
        self,
        uid: UserId,
        details: LicenseDetails,
        source: Source,
        key: LicenseKey | None,
    ) -> PublicId:
        """R5: a license added by key or file joins its owner's pool, created in All."""
        self._check_manageable(details)
        pid = details.public_id
        owner = details.owner.strip()
        pool_key = f"owner:{owner.casefold()}" if owner else f"license:{pid}"
        already_present = False

        def decide() -> Decision[PublicId]:
            nonlocal already_present
            lic = self._license(pid)
            already_present = lic.exists
            if lic.exists:
                log.info("license %s is already present; nothing recorded", pid)
                return pid, []
            pool_id = pool_id_for(pool_key)
            p = self._pool(pool_id)
            now = self._now()
            actor = user_actor(uid)
            emit = pool.ensure(
                p, name=owner or str(pid), group=self.all_group, source=source, now=now, actor=actor
            )
            pool.join(p, emit, pid)
            added = license.add(
                lic, details, pool_id=pool_id, source=source, key=key, now=now, actor=actor
            )
            # the license is added before it joins its pool: the history reads causally (R29)
            return pid, added + emit.events

        result = self._execute(decide)
        if not already_present:
            log.info("license %s added from %s", pid, source.value)
        return result
