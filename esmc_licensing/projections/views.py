"""The immutable values that queries return (api.md). None carries a license key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import attrs

from ..domain.ids import GroupId, PoolId, PublicId
from ..domain.status import Status
from ..domain.values import LicenseType, Source


@attrs.frozen
class LicenseView:
    public_id: PublicId
    pool_id: PoolId
    group: GroupId
    license_type: LicenseType
    product: str
    units: int
    used_units: int
    offline_units: int
    subunits: int
    expires: date | None
    subscription: bool
    owner: str
    contact: str
    source: Source
    tags: frozenset[str]
    status: Status
    product_code: str = ""
    license_user: str = ""
    key_last4: str | None = None
    """Only the last four characters of the key (R2), for recognising it."""


@attrs.frozen
class PoolView:
    pool_id: PoolId
    name: str
    group: GroupId
    source: Source
    tags: frozenset[str]
    public_ids: tuple[PublicId, ...]
    indivisible: bool = False
    company: str | None = None


@attrs.frozen
class HistoryEntry:
    when: datetime
    actor: str
    what: str
    target: str
    details: Mapping[str, str]
    position: int = 0
