"""Fixtures shared by the suite: a clock, a vendor, and the three stores.

Behavioural tests take ``make_app`` (or ``app``) and run once per store:
``memory`` (eventsourcing POPO), ``sqlite`` (a file) and ``postgres``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, settings

from esmc_licensing import (
    Adapters,
    GroupId,
    InMemoryAccounts,
    InMemoryActivationServer,
    LicenseManagement,
    ManualClock,
    Permission,
    Policy,
    PoolId,
    PublicId,
    UserId,
)
from esmc_licensing.testing import stores

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
PRODUCT = "ESET Endpoint Security"

STORES = ["memory", "sqlite", "postgres"]
MAX_OPEN_APPS = 6


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def vendor(clock: ManualClock) -> InMemoryActivationServer:
    return InMemoryActivationServer(clock=clock)


@pytest.fixture
def accounts(vendor: InMemoryActivationServer) -> InMemoryAccounts:
    """Vendor accounts (EMA2, EBA, ELA) over the test's activation server."""
    return InMemoryAccounts(vendor)


def _postgres_or_skip() -> None:
    reason = stores.postgres_unavailable_reason()
    if reason is None:
        return
    if stores.REQUIRE_SERVICES:
        pytest.fail(f"ESMC_REQUIRE_SERVICES is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(params=STORES)
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """eventsourcing settings for one of the three stores."""
    if request.param == "memory":
        yield stores.memory_env()
    elif request.param == "sqlite":
        yield stores.sqlite_env(tmp_path / "licenses.db")
    else:
        _postgres_or_skip()
        with stores.postgres_schema() as schema:
            yield stores.postgres_env(schema)


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return stores.sqlite_env(tmp_path / "licenses.db")


@pytest.fixture
def postgres_env() -> Iterator[dict[str, str]]:
    _postgres_or_skip()
    with stores.postgres_schema() as schema:
        yield stores.postgres_env(schema)


AppFactory = Callable[..., LicenseManagement]


@pytest.fixture
def make_app(
    store_env: dict[str, str], vendor: InMemoryActivationServer, clock: ManualClock
) -> Iterator[AppFactory]:
    """Open (or reopen) an application on this test's store.

    POPO keeps its events in the recorder object, so "reopening" an in-memory
    store reuses the first application's recorder.
    """
    opened: list[LicenseManagement] = []

    def factory(policy: Policy | None = None, **adapter_overrides: object) -> LicenseManagement:
        adapters = Adapters(activation_server=vendor, clock=clock, **adapter_overrides)  # type: ignore[arg-type]
        app = LicenseManagement(env=store_env, adapters=adapters, policy=policy)
        if store_env["PERSISTENCE_MODULE"].endswith("popo") and opened:
            first = opened[0]
            app._core._share_store(first._core)
        opened.append(app)
        # Hypothesis examples open an application each; keep the number of open
        # ones (and so PostgreSQL connections) bounded by closing the oldest.
        while len(opened) > MAX_OPEN_APPS:
            opened.pop(1).close()
        return app

    yield factory
    for app in opened:
        app.close()


@pytest.fixture
def app(make_app: AppFactory) -> LicenseManagement:
    return make_app()


@attrs.frozen
class Story:
    """The seed's branch-administrator story: three branches, three admins."""

    admin: UserId
    san_diego: GroupId
    sydney: GroupId
    tokyo: GroupId
    john: UserId
    larry: UserId
    makio: UserId


def branch_story(app: LicenseManagement) -> Story:
    admin = app.administrator
    sd = app.create_group(admin, "San Diego")
    sy = app.create_group(admin, "Sydney")
    tk = app.create_group(admin, "Tokyo")
    john = app.create_user(admin, "John", sd)
    larry = app.create_user(admin, "Larry", sy)
    makio = app.create_user(admin, "Makio", tk)
    app.grant(admin, john, sd, Permission.WRITE)
    app.grant(admin, larry, sy, Permission.USE)
    app.grant(admin, makio, tk, Permission.READ)
    return Story(admin, sd, sy, tk, john, larry, makio)


@pytest.fixture
def story(app: LicenseManagement) -> Story:
    return branch_story(app)


def seen_by(app: LicenseManagement, user: UserId) -> list[PublicId]:
    """The Public IDs of the licenses ``user`` sees, in the order listed."""
    return [v.public_id for v in app.licenses(user)]


def issue(
    vendor: InMemoryActivationServer,
    public_id: str,
    *,
    owner: str = "Acme",
    units: int = 10,
    expires: date | None = date(2027, 6, 30),
    product: str = PRODUCT,
    **kw: object,
) -> str:
    return vendor.issue(
        public_id=public_id, product=product, units=units, expires=expires, owner=owner, **kw  # type: ignore[arg-type]
    )


def recorded(app: LicenseManagement) -> int:
    """How far the log reaches: a refused command must leave it where it was."""
    return app._core.recorder.max_notification_id() or 0


def pool_of(app: LicenseManagement, public_id: str) -> PoolId:
    return app.license(app.administrator, public_id).pool_id
