"""A pytest plugin for products that embed esmc-licensing.

Installed with the package (entry point ``pytest11``): it gives a product's
own tests an in-memory application wired to deterministic doubles.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ..adapters.memory import InMemoryActivationServer, ManualClock
from ..application import LicenseManagement
from ..wiring import Adapters


@pytest.fixture
def licensing_clock() -> ManualClock:
    """A clock at 2026-01-01 00:00 UTC that moves only when advanced."""
    return ManualClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def licensing_vendor(licensing_clock: ManualClock) -> InMemoryActivationServer:
    return InMemoryActivationServer(clock=licensing_clock)


@pytest.fixture
def licensing_app(
    licensing_vendor: InMemoryActivationServer, licensing_clock: ManualClock
) -> LicenseManagement:
    """An application over an in-memory store and the in-memory vendor."""
    return LicenseManagement(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        adapters=Adapters(activation_server=licensing_vendor, clock=licensing_clock),
    )
