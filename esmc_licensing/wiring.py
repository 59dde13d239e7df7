"""The composition root's values: which adapters an application talks to."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, TypeGuard

import attrs

from .adapters.ports import (
    AccountService,
    ActivationServer,
    AgentTransport,
    AlertSink,
    Clock,
    OfflineFileVerifier,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from .adapters.memory import InMemoryActivationServer
    from .adapters.offline_file import Ed25519OfflineFileVerifier, OfflineLicense

_MEMORY = "esmc_licensing.adapters.memory"


def _default_clock() -> Clock:
    from .adapters.clock import SystemClock

    return SystemClock()


def _is_in_memory_server(server: object) -> TypeGuard[InMemoryActivationServer]:
    # Not imported to answer: a server cannot be an InMemoryActivationServer
    # before its module is imported.
    memory = sys.modules.get(_MEMORY)
    return memory is not None and isinstance(server, memory.InMemoryActivationServer)


class VendorKeyVerifier:
    """An ``OfflineFileVerifier`` with the in-memory vendor's ``public_key``.

    An ``Ed25519OfflineFileVerifier`` built on first use, so that an
    application that never verifies an offline file neither imports the
    offline-file code and its crypto nor derives the vendor's key.
    """

    def __init__(self, activation_server: InMemoryActivationServer) -> None:
        self.activation_server = activation_server
        self._verifier: Ed25519OfflineFileVerifier | None = None

    @property
    def verifier(self) -> Ed25519OfflineFileVerifier:
        """The verifier itself (built now if not built yet)."""
        verifier = self._verifier
        if verifier is None:
            from .adapters.offline_file import Ed25519OfflineFileVerifier

            verifier = Ed25519OfflineFileVerifier(self.activation_server.public_key)
            self._verifier = verifier  # a race only builds the same verifier twice
        return verifier

    def verify(self, content: bytes, console_token: str, now: datetime) -> OfflineLicense:
        return self.verifier.verify(content, console_token, now)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.verifier.public_key

    @property
    def key_id(self) -> str:
        return self.verifier.key_id

    def __repr__(self) -> str:
        return f"VendorKeyVerifier({self.activation_server!r})"


@attrs.define(kw_only=True)
class Adapters:
    """The ports an application uses; every one defaults to an in-memory double.

    With no offline-file verifier given, files are verified with the activation
    server's ``public_key`` (R16). With no clock given, the activation server's
    clock is used if it has one, else the system clock (UTC), so that the
    vendor and the store agree on "now".
    """

    activation_server: ActivationServer = attrs.field(default=None)
    #: the vendor's account services (R17, R18); None: no account can be connected
    accounts: AccountService | None = None
    #: the client-task transport to agents (R21, R24, R34)
    agents: AgentTransport = attrs.field(default=None)
    clock: Clock = attrs.field(default=None)
    offline_verifier: OfflineFileVerifier = attrs.field(default=None)
    #: where ``deliver_alerts()`` sends alerts (R35): ``AlertSink``s
    alert_sinks: tuple[AlertSink, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        if self.clock is None:
            server_clock = getattr(self.activation_server, "clock", None)
            self.clock = server_clock if server_clock is not None else _default_clock()
        if self.activation_server is None:
            from .adapters.memory import InMemoryActivationServer

            self.activation_server = InMemoryActivationServer(clock=self.clock)
        server = self.activation_server
        if self.accounts is None and _is_in_memory_server(server):
            from .adapters.accounts import InMemoryAccounts

            self.accounts = InMemoryAccounts(server)
        if self.agents is None:
            from .adapters.agents import InMemoryAgents

            self.agents = InMemoryAgents()
        if self.offline_verifier is None:
            if _is_in_memory_server(server):
                # its key is always there: derive it (and import crypto) on first use
                self.offline_verifier = VendorKeyVerifier(server)
            else:
                vendor_key = getattr(self.activation_server, "public_key", None)
                if vendor_key is not None:
                    from .adapters.offline_file import Ed25519OfflineFileVerifier

                    self.offline_verifier = Ed25519OfflineFileVerifier(vendor_key)
