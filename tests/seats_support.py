"""Helpers for the computer, activation and seat tests (R20-R27)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from esmc_licensing import (
    ComputerId,
    GroupId,
    InMemoryActivationServer,
    LicenseManagement,
    LicensingError,
    PublicId,
    UserId,
)

from .conftest import PRODUCT, issue, recorded

SERVER = "ESET Server Security"


def refused(
    app: LicenseManagement, error: type[LicensingError], act: Callable[[], object], match: str
) -> LicensingError:
    """The command raises ``error`` matching ``match`` and records nothing."""
    before = recorded(app)
    with pytest.raises(error, match=match) as caught:
        act()
    assert recorded(app) == before, "a refused command recorded something"
    assert len(str(caught.value).split()) >= 4, str(caught.value)
    return caught.value


def add_license(
    app: LicenseManagement,
    vendor: InMemoryActivationServer,
    public_id: str,
    *,
    group: GroupId | None = None,
    units: int = 10,
    **kw: object,
) -> PublicId:
    """Issue a license (its own owner, so its own pool), add it by key, move it to ``group``."""
    kw.setdefault("owner", f"Owner of {public_id}")
    key = issue(vendor, public_id, units=units, **kw)  # type: ignore[arg-type]
    pid = app.add_license_key(app.administrator, key)
    if group is not None:
        view = app.license(app.administrator, pid)
        app.move_pools(app.administrator, [view.pool_id], group)
    return pid


def add_computers(
    app: LicenseManagement,
    group: GroupId,
    n: int,
    *,
    prefix: str = "pc",
    products: Sequence[str] = (PRODUCT,),
    actor: UserId | None = None,
) -> list[ComputerId]:
    return [
        app.register_computer(
            actor or app.administrator,
            f"{prefix}-{i}",
            group,
            fingerprint=f"{prefix}-{group}-{i}",
            products=list(products),
        )
        for i in range(n)
    ]


def topics(app: LicenseManagement, name: str) -> int:
    return sum(
        1
        for n in app._core.recorder.select_notifications(start=None, limit=1_000_000)
        if n.topic == name
    )


def overuse_facts(app: LicenseManagement, public_id: str) -> list[str]:
    """The overuse facts of one license, in order (R23)."""
    out = []
    for n in app._core.recorder.select_notifications(start=None, limit=1_000_000):
        if n.topic in ("LicenseOverused", "LicenseBackWithinUnits"):
            ev = app._core.mapper.to_domain_event(n)
            if ev.public_id == public_id:
                out.append(n.topic)
    return out
