"""R8: a license's status as a pure function of its facts and today's date.

Status is never stored: views keep the facts and compute the level at query
time, so "expiring" moves with the calendar without any event being written.
"""

from __future__ import annotations

from datetime import date

import attrs

from .values import Policy, StatusLevel, StatusReason


@attrs.frozen
class Status:
    level: StatusLevel
    reasons: frozenset[StatusReason]
    registration_url: str | None = None

    @property
    def message(self) -> str:
        if self.level is StatusLevel.OK:
            return "your license is activated successfully"
        return ", ".join(sorted(r.value.lower().replace("_", " ") for r in self.reasons))


#: the reasons of R8, in the order of the bits of a status's key below
_BITS: tuple[StatusReason, ...] = (
    StatusReason.SUSPENDED,
    StatusReason.EXPIRED,
    StatusReason.EXPIRING,
    StatusReason.NOT_REGISTERED,
    StatusReason.OBSOLETE,
    StatusReason.OVERUSED,
    StatusReason.AT_RISK_OF_OVERUSE,
)
#: a status by its reasons' bits, for those with no registration URL: statuses
#: are immutable values, and a list of thousands of licenses has a handful
_BY_BITS: dict[int, Status] = {}


def _status(bits: int, registration_url: str | None) -> Status:
    reasons = frozenset(r for i, r in enumerate(_BITS) if bits >> i & 1)
    return Status(
        level=max((r.level for r in reasons), default=StatusLevel.OK),
        reasons=reasons,
        registration_url=registration_url,
    )


def license_status(
    *,
    units: int,
    used_units: int,
    expires: date | None,
    today: date,
    policy: Policy,
    suspended: bool = False,
    registered: bool = True,
    registration_url: str | None = None,
    obsolete: bool = False,
) -> Status:
    """The level is the worst reason present, in the R8 order."""
    bits = 1 if suspended else 0
    if expires is not None:
        days_left = (expires - today).days
        if days_left < 0:
            bits |= 2
        elif days_left <= policy.expiring_days:
            bits |= 4
    if not registered:
        bits |= 8
    if obsolete:
        bits |= 16
    if used_units > units:
        bits |= 32
    else:
        ratio = policy.at_risk_fraction
        if used_units * ratio.denominator > units * ratio.numerator:
            bits |= 64
    if not registered and registration_url is not None:
        return _status(bits, registration_url)
    found = _BY_BITS.get(bits)
    if found is None:
        found = _BY_BITS[bits] = _status(bits, None)
    return found
