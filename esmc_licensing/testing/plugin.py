"""A pytest plugin for products that embed esmc-licensing.

Installed with the package (entry point ``pytest11``), so it loads in every
pytest run of the environment: it imports nothing of the library until a test
asks for one of its fixtures, and costs a pytest run that uses none of them
almost nothing.

- ``licensing_clock``, ``licensing_vendor``, ``licensing_app``: one in-memory
  application per test, wired to a manual clock and the in-memory vendor.
- ``licensing_world``: a factory, session-scoped so that a Hypothesis
  ``@given`` test may use it (Hypothesis refuses function-scoped fixtures,
  which would be shared by every example); each call makes a fresh world.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
import pytest

if TYPE_CHECKING:
    from ..adapters.memory import InMemoryActivationServer, ManualClock
    from ..application import LicenseManagement

#: where every clock the plugin makes starts
START = datetime(2026, 1, 1, tzinfo=UTC)


@attrs.frozen
class LicensingWorld:
    """A fresh application with its in-memory vendor and clock."""

    app: LicenseManagement
    vendor: InMemoryActivationServer
    clock: ManualClock


def make_world(**adapters: Any) -> LicensingWorld:
    """A new in-memory application at :data:`START`; ``adapters`` override the
    in-memory ones (``agents=InMemoryAgents()``, ``accounts=...``)."""
    from ..adapters.memory import InMemoryActivationServer, ManualClock
    from ..application import LicenseManagement
    from ..wiring import Adapters

    clock = adapters.pop("clock", None) or ManualClock(START)
    vendor = adapters.pop("activation_server", None) or InMemoryActivationServer(clock=clock)
    app = LicenseManagement(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        adapters=Adapters(activation_server=vendor, clock=clock, **adapters),
    )
    return LicensingWorld(app, vendor, clock)


@pytest.fixture
def licensing_clock() -> ManualClock:
    """A clock at 2026-01-01 00:00 UTC that moves only when advanced."""
    from ..adapters.memory import ManualClock

    return ManualClock(START)


@pytest.fixture
def licensing_vendor(licensing_clock: ManualClock) -> InMemoryActivationServer:
    """The in-memory activation server on ``licensing_clock``."""
    from ..adapters.memory import InMemoryActivationServer

    return InMemoryActivationServer(clock=licensing_clock)


@pytest.fixture
def licensing_app(
    licensing_vendor: InMemoryActivationServer, licensing_clock: ManualClock
) -> LicenseManagement:
    """An application over an in-memory store and the in-memory vendor."""
    return make_world(activation_server=licensing_vendor, clock=licensing_clock).app


@pytest.fixture(scope="session")
def licensing_world() -> Callable[..., LicensingWorld]:
    """A factory of fresh worlds (application, vendor, clock): call it once per
    Hypothesis example; it takes the same overrides as :func:`make_world`."""
    return make_world


__all__ = [
    "START",
    "LicensingWorld",
    "licensing_app",
    "licensing_clock",
    "licensing_vendor",
    "licensing_world",
    "make_world",
]
