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
    reasons: set[StatusReason] = set()
    if suspended:
        reasons.add(StatusReason.SUSPENDED)
    if expires is not None:
        days_left = (expires - today).days
        if days_left < 0:
            reasons.add(StatusReason.EXPIRED)
        elif days_left <= policy.expiring_days:
            reasons.add(StatusReason.EXPIRING)
    if not registered:
        reasons.add(StatusReason.NOT_REGISTERED)
    if obsolete:
        reasons.add(StatusReason.OBSOLETE)
    if used_units > units:
        reasons.add(StatusReason.OVERUSED)
    else:
        ratio = policy.at_risk_fraction
        if used_units * ratio.denominator > units * ratio.numerator:
            reasons.add(StatusReason.AT_RISK_OF_OVERUSE)
    level = max((r.level for r in reasons), default=StatusLevel.OK)
    return Status(
        level=level,
        reasons=frozenset(reasons),
        registration_url=registration_url if not registered else None,
    )
