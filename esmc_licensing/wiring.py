"""The composition root's values: which adapters an application talks to."""

from __future__ import annotations

from typing import Any

import attrs

from .adapters.memory import InMemoryActivationServer
from .adapters.offline_file import Ed25519OfflineFileVerifier
from .adapters.ports import ActivationServer, Clock, OfflineFileVerifier


def _default_clock() -> Clock:
    from .adapters.clock import SystemClock

    return SystemClock()


@attrs.define(kw_only=True)
class Adapters:
    """The ports an application uses; every one defaults to an in-memory double.

    With no offline-file verifier given, files are verified with the activation
    server's ``public_key`` (R16). With no clock given, the activation server's
    clock is used if it has one, else the system clock (UTC), so that the
    vendor and the store agree on "now".
    """

    activation_server: ActivationServer = attrs.field(default=None)
    accounts: Any = None
    agents: Any = None
    clock: Clock = attrs.field(default=None)
    offline_verifier: OfflineFileVerifier = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.clock is None:
            server_clock = getattr(self.activation_server, "clock", None)
            self.clock = server_clock if server_clock is not None else _default_clock()
        if self.activation_server is None:
            self.activation_server = InMemoryActivationServer(clock=self.clock)
        if self.accounts is None and isinstance(self.activation_server, InMemoryActivationServer):
            from .adapters.accounts import InMemoryAccounts

            self.accounts = InMemoryAccounts(self.activation_server)
        if self.agents is None:
            from .adapters.agents import InMemoryAgents

            self.agents = InMemoryAgents()
        if self.offline_verifier is None:
            vendor_key = getattr(self.activation_server, "public_key", None)
            if vendor_key is not None:
                self.offline_verifier = Ed25519OfflineFileVerifier(vendor_key)
