"""The License decider (R4, R6, R15, R18, R23, R27).

A license's facts come from the vendor; the console never lowers its units
by hand (R6). Overuse is a crossing: ``LicenseOverused`` is recorded once when
used units first exceed units and ``LicenseBackWithinUnits`` when they drop
back, so the overuse facts always alternate.
"""

from __future__ import annotations

from datetime import date, datetime

import attrs

from .events import (
    DomainEvent,
    Emitter,
    ExpirationChanged,
    LicenseAdded,
    LicenseBackWithinUnits,
    LicenseKeyResealed,
    LicenseObsoleted,
    LicenseOverused,
    LicenseRegistered,
    LicenseRemoved,
    LicenseSuspended,
    LicenseUnsuspended,
    SeatReleased,
    SeatTaken,
    UnitsChangedByVendor,
    UsageReported,
)
from .evolving import replace
from .ids import ComputerId, LicenseKey, PoolId, PublicId, TaskId, license_aggregate_id
from .seat_set import EMPTY, SeatSet
from .values import LicenseDetails, LicenseType, Source


@attrs.frozen
class LicenseState:
    public_id: PublicId
    version: int = 0
    exists: bool = False
    pool_id: PoolId | None = None
    source: Source | None = None
    license_type: LicenseType = LicenseType.BUSINESS
    product: str = ""
    product_code: str = ""
    units: int = 0
    offline_units: int = 0
    subunits: int = 0
    expires: date | None = None
    subscription: bool = False
    owner: str = ""
    contact: str = ""
    license_user: str = ""
    registered: bool = True
    registration_url: str | None = None
    suspended: bool = False
    obsolete: bool = False
    vendor_used_units: int = 0
    overused: bool = False
    key: LicenseKey | None = attrs.field(default=None, repr=False)
    #: seats taken through this console: (computer id as str, product) pairs (R20)
    seats: SeatSet = EMPTY

    @property
    def used_units(self) -> int:
        """Seats in use: what the vendor last reported, or more if this console
        has since activated more seats than that report knew of (R23).

        The vendor's usage report counts every activation, including those made
        from here, so the two are not added up.
        """
        return max(len(self.seats), self.vendor_used_units)

    @property
    def aggregate_id(self) -> object:
        return license_aggregate_id(self.public_id)


def initial(public_id: PublicId) -> LicenseState:
    return LicenseState(public_id=public_id)


def evolve(state: LicenseState, event: DomainEvent) -> LicenseState:
    v = event.originator_version
    if isinstance(event, LicenseAdded):
        return LicenseState(
            public_id=state.public_id,
            version=v,
            exists=True,
            pool_id=event.pool_id,
            source=event.source,
            license_type=event.license_type,
            product=event.product,
            product_code=event.product_code,
            units=event.units,
            offline_units=event.offline_units,
            subunits=event.subunits,
            expires=event.expires,
            subscription=event.subscription,
            owner=event.owner,
            contact=event.contact,
            license_user=event.license_user,
            registered=event.registered,
            registration_url=event.registration_url,
            suspended=event.suspended,
            obsolete=event.obsolete,
            vendor_used_units=event.used_units,
            overused=event.used_units > event.units,
            key=event.key,
        )
    if isinstance(event, LicenseRemoved):
        return replace(state, version=v, exists=False)
    if isinstance(event, LicenseKeyResealed):
        return replace(state, version=v, key=event.key)
    if isinstance(event, UnitsChangedByVendor):
        return replace(state, version=v, units=event.units)
    if isinstance(event, ExpirationChanged):
        return replace(state, version=v, expires=event.expires)
    if isinstance(event, LicenseSuspended):
        return replace(state, version=v, suspended=True)
    if isinstance(event, LicenseUnsuspended):
        return replace(state, version=v, suspended=False)
    if isinstance(event, LicenseRegistered):
        return replace(state, version=v, registered=True, registration_url=None)
    if isinstance(event, LicenseObsoleted):
        return replace(state, version=v, obsolete=True)
    if isinstance(event, UsageReported):
        return replace(state, version=v, vendor_used_units=event.used_units)
    if isinstance(event, LicenseOverused):
        return replace(state, version=v, overused=True)
    if isinstance(event, LicenseBackWithinUnits):
        return replace(state, version=v, overused=False)
    if isinstance(event, SeatTaken):
        seat = (str(event.computer_id), event.product)
        return replace(state, version=v, seats=state.seats.with_seat(seat))
    if isinstance(event, SeatReleased):
        seat = (str(event.computer_id), event.product)
        return replace(state, version=v, seats=state.seats.without_seat(seat))
    return replace(state, version=v)


def reseal(state: LicenseState, now: datetime, actor: str) -> list[DomainEvent]:
    """R32: state the key again (sealed with the current data key)."""
    if not state.exists or state.key is None:
        return []
    state.key.reveal()  # an unavailable key cannot be re-stated
    emit = Emitter(license_aggregate_id(state.public_id), state.version, now, actor)
    emit(LicenseKeyResealed, public_id=state.public_id, key=state.key)
    return emit.events


def add(
    state: LicenseState,
    details: LicenseDetails,
    *,
    pool_id: PoolId,
    source: Source,
    key: LicenseKey | None,
    now: datetime,
    actor: str,
) -> list[DomainEvent]:
    """R15: adding a license already present records nothing."""
    if state.exists:
        return []
    emit = Emitter(license_aggregate_id(state.public_id), state.version, now, actor)
    emit(
        LicenseAdded,
        public_id=state.public_id,
        pool_id=pool_id,
        source=source,
        license_type=details.license_type,
        product=details.product,
        product_code=details.product_code,
        units=details.units,
        offline_units=details.offline_units,
        subunits=details.subunits,
        expires=details.expires,
        subscription=details.subscription,
        owner=details.owner,
        contact=details.contact,
        license_user=details.license_user,
        registered=details.registered,
        registration_url=details.registration_url,
        suspended=details.suspended,
        obsolete=details.obsolete,
        used_units=details.used_units,
        key=key,
    )
    if details.used_units > details.units:
        emit(
            LicenseOverused,
            public_id=state.public_id,
            used_units=details.used_units,
            units=details.units,
        )
    return emit.events


def remove(state: LicenseState, now: datetime, actor: str) -> list[DomainEvent]:
    if not state.exists:
        return []
    assert state.pool_id is not None
    emit = Emitter(license_aggregate_id(state.public_id), state.version, now, actor)
    emit(LicenseRemoved, public_id=state.public_id, pool_id=state.pool_id)
    return emit.events


def follow_vendor(
    state: LicenseState, details: LicenseDetails, now: datetime, actor: str
) -> list[DomainEvent]:
    """R18: record only what the vendor changed; the same details twice record nothing."""
    assert state.exists
    pid = state.public_id
    emit = Emitter(license_aggregate_id(pid), state.version, now, actor)
    if details.units != state.units:
        emit(UnitsChangedByVendor, public_id=pid, units=details.units, previous=state.units)
    if details.expires != state.expires:
        emit(ExpirationChanged, public_id=pid, expires=details.expires, previous=state.expires)
    if details.suspended and not state.suspended:
        emit(LicenseSuspended, public_id=pid)
    elif state.suspended and not details.suspended:
        emit(LicenseUnsuspended, public_id=pid)
    if details.registered and not state.registered:
        emit(LicenseRegistered, public_id=pid)
    if details.obsolete and not state.obsolete:
        emit(LicenseObsoleted, public_id=pid)
    if details.used_units != state.vendor_used_units:
        emit(UsageReported, public_id=pid, used_units=details.used_units)
    _record_overuse_crossing(
        state, emit, units=details.units, used=max(len(state.seats), details.used_units)
    )
    return emit.events


def _record_overuse_crossing(state: LicenseState, emit: Emitter, *, units: int, used: int) -> None:
    """R23: one fact per crossing, in either direction."""
    if used > units and not state.overused:
        emit(LicenseOverused, public_id=state.public_id, used_units=used, units=units)
    elif used <= units and state.overused:
        emit(LicenseBackWithinUnits, public_id=state.public_id, used_units=used, units=units)


# -- seats (R20, R21, R23, R24) -------------------------------------------------------


def seat_ceiling_reached(state: LicenseState, ceiling: int | None) -> bool:
    """R23: no seat beyond the overuse policy's ceiling (None: no ceiling).

    Compared with ``used_units``, which includes usage the vendor reports.
    """
    return ceiling is not None and state.used_units >= ceiling


def take_seats(
    state: LicenseState,
    wanted: list[tuple[ComputerId, str]],
    *,
    ceiling: int | None,
    task_id: TaskId | None,
    now: datetime,
    actor: str,
) -> tuple[list[tuple[ComputerId, str]], list[tuple[ComputerId, str]], list[DomainEvent]]:
    """Take a seat per (computer, product), in order, up to the ceiling.

    Returns (newly taken, refused at the ceiling, events). A seat already held
    is neither (R20: re-activation takes no new seat). Overuse is recorded
    once when used units cross the units (R23).
    """
    emit = Emitter(license_aggregate_id(state.public_id), state.version, now, actor)
    held = state.seats  # not copied: a large license holds thousands of seats
    new: set[tuple[str, str]] = set()
    taken: list[tuple[ComputerId, str]] = []
    refused: list[tuple[ComputerId, str]] = []
    for computer_id, product in wanted:
        seat = (str(computer_id), product)
        if seat in held or seat in new:
            continue
        used = max(len(held) + len(new), state.vendor_used_units)
        if ceiling is not None and used >= ceiling:
            refused.append((computer_id, product))
            continue
        new.add(seat)
        taken.append((computer_id, product))
        emit(
            SeatTaken,
            public_id=state.public_id,
            computer_id=computer_id,
            product=product,
            task_id=task_id,
        )
    if taken:
        _record_overuse_crossing(
            state, emit, units=state.units, used=max(len(held) + len(new), state.vendor_used_units)
        )
    return taken, refused, emit.events


def release_seats(
    state: LicenseState,
    seats: list[tuple[ComputerId, str]],
    reason: str,
    now: datetime,
    actor: str,
) -> list[DomainEvent]:
    """Free seats (R24, R25); a seat not held records nothing."""
    emit = Emitter(license_aggregate_id(state.public_id), state.version, now, actor)
    held = state.seats  # not copied: a large license holds thousands of seats
    gone: set[tuple[str, str]] = set()
    for computer_id, product in seats:
        seat = (str(computer_id), product)
        if seat not in held or seat in gone:
            continue
        gone.add(seat)
        emit(
            SeatReleased,
            public_id=state.public_id,
            computer_id=computer_id,
            product=product,
            reason=reason,
        )
    if emit.events:
        _record_overuse_crossing(
            state, emit, units=state.units,
            used=max(len(held) - len(gone), state.vendor_used_units),
        )
    return emit.events
