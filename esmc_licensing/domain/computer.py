"""The Computer decider (R20, R24-R27).

A managed computer has an agent, a hardware fingerprint, a static group, a
last-connected time and installed products; per product, the license it is
activated with (or none, or activated outside this console). Seats are
counted on the License aggregate; the computer records what is activated on
it, so both sides of a seat change in one atomic save.

A computer's id is derived from its hardware fingerprint, so a new
fingerprint (a clone, a VM) is a new computer and registering the same
hardware twice meets the store's uniqueness check (R20).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import attrs

from .events import (
    ComputerConnected,
    ComputerRegistered,
    ComputerRemoved,
    DomainEvent,
    Emitter,
    ProductActivated,
    ProductDeactivated,
    ProductInstalled,
)
from .evolving import replace
from .ids import ComputerId, GroupId, PublicId, TaskId


def computer_id_for(fingerprint: str | None, *, name: str, group: GroupId) -> ComputerId:
    """Managed computers are named by their hardware; unmanaged ones by group and name."""
    if fingerprint is not None:
        return ComputerId.derive(f"fingerprint:{fingerprint}")
    return ComputerId.derive(f"unmanaged:{group}:{name.casefold()}")


@attrs.frozen
class InstalledProduct:
    """One product on a computer.

    ``public_id`` is the license it is activated with (None: not activated, or
    activated outside this console when ``activated``); ``suspended``: its
    license is suspended, so it is deactivated but keeps its seat (R27).
    """

    public_id: PublicId | None = None
    activated: bool = False
    suspended: bool = False

    @property
    def outside(self) -> bool:
        return self.activated and self.public_id is None

    @property
    def holds_seat(self) -> bool:
        return self.public_id is not None and (self.activated or self.suspended)


@attrs.frozen
class ComputerState:
    computer_id: ComputerId
    version: int = 0
    exists: bool = False
    removed: bool = False
    name: str = ""
    group: GroupId | None = None
    fingerprint: str | None = None
    agent_id: str | None = None
    registered_at: datetime | None = None
    last_connected: datetime | None = None
    products: Mapping[str, InstalledProduct] = attrs.field(factory=dict)

    @property
    def managed(self) -> bool:
        return self.agent_id is not None

    @property
    def last_seen(self) -> datetime | None:
        """R26: a computer that never connected counts from its registration."""
        return self.last_connected or self.registered_at

    @property
    def device(self) -> str:
        """How the activation server knows this computer."""
        return self.fingerprint or str(self.computer_id)

    def seats(self) -> list[tuple[PublicId, str]]:
        """(license, product) of every product holding a seat here, by product."""
        return [
            (p.public_id, name)
            for name, p in sorted(self.products.items())
            if p.holds_seat and p.public_id is not None
        ]


def initial(computer_id: ComputerId) -> ComputerState:
    return ComputerState(computer_id=computer_id)


def _with_product(state: ComputerState, v: int, name: str, p: InstalledProduct) -> ComputerState:
    return replace(state, version=v, products={**state.products, name: p})


def evolve(state: ComputerState, event: DomainEvent) -> ComputerState:
    """Total and pure: history is fact."""
    v = event.originator_version
    if isinstance(event, ComputerRegistered):
        products = dict.fromkeys(event.products, InstalledProduct())
        for name in event.activated_outside:
            products[name] = InstalledProduct(activated=True)
        return ComputerState(
            computer_id=state.computer_id,
            version=v,
            exists=True,
            name=event.name,
            group=event.group,
            fingerprint=event.fingerprint,
            agent_id=event.agent_id,
            registered_at=event.timestamp,
            products=products,
        )
    if isinstance(event, ComputerConnected):
        last = state.last_connected
        return replace(
            state, version=v, last_connected=event.at if last is None else max(last, event.at)
        )
    if isinstance(event, ProductInstalled):
        if event.product in state.products:
            return replace(state, version=v)
        return _with_product(state, v, event.product, InstalledProduct())
    if isinstance(event, ProductActivated):
        return _with_product(state, v, event.product, InstalledProduct(event.public_id, True))
    if isinstance(event, ProductDeactivated):
        if event.suspended:
            kept = InstalledProduct(event.public_id, activated=False, suspended=True)
            return _with_product(state, v, event.product, kept)
        return _with_product(state, v, event.product, InstalledProduct())
    if isinstance(event, ComputerRemoved):
        return replace(state, version=v, exists=False, removed=True)
    return replace(state, version=v)


# -- decisions ------------------------------------------------------------------------


def register(
    state: ComputerState,
    *,
    name: str,
    group: GroupId,
    fingerprint: str | None,
    agent_id: str | None,
    products: tuple[str, ...],
    activated_outside: tuple[str, ...],
    now: datetime,
    actor: str,
) -> list[DomainEvent]:
    """R20: registering a computer already registered records nothing."""
    if state.exists:
        return []
    emit = Emitter(state.computer_id, state.version, now, actor)
    emit(
        ComputerRegistered,
        computer_id=state.computer_id,
        name=name,
        group=group,
        fingerprint=fingerprint,
        agent_id=agent_id,
        products=products,
        activated_outside=activated_outside,
    )
    return emit.events


def connected(state: ComputerState, at: datetime, now: datetime, actor: str) -> list[DomainEvent]:
    """An agent check-in; one older than the last known records nothing."""
    if not state.exists or (state.last_connected is not None and at <= state.last_connected):
        return []
    emit = Emitter(state.computer_id, state.version, now, actor)
    emit(ComputerConnected, computer_id=state.computer_id, at=at)
    return emit.events


def install(
    state: ComputerState, product: str, task_id: TaskId | None, now: datetime, actor: str
) -> list[DomainEvent]:
    if not state.exists or product in state.products:
        return []
    emit = Emitter(state.computer_id, state.version, now, actor)
    emit(ProductInstalled, computer_id=state.computer_id, product=product, task_id=task_id)
    return emit.events


def activate(
    state: ComputerState,
    product: str,
    public_id: PublicId,
    *,
    task_id: TaskId | None,
    reactivated: bool = False,
    now: datetime,
    actor: str,
) -> list[DomainEvent]:
    """Record a product activated with a license (the agent reported success)."""
    if not state.exists:
        return []
    current = state.products.get(product)
    if current is not None and current.activated and current.public_id == public_id:
        return []
    emit = Emitter(state.computer_id, state.version, now, actor)
    emit(
        ProductActivated,
        computer_id=state.computer_id,
        product=product,
        public_id=public_id,
        task_id=task_id,
        reactivated=reactivated,
    )
    return emit.events


def deactivate(
    state: ComputerState,
    products: list[str],
    reason: str,
    now: datetime,
    actor: str,
    *,
    suspended: bool = False,
) -> list[DomainEvent]:
    """R24 (or R27 with ``suspended``): only products that are activated change."""
    emit = Emitter(state.computer_id, state.version, now, actor)
    for name in products:
        p = state.products.get(name)
        if p is None or not (p.activated or (p.suspended and not suspended)):
            continue
        emit(
            ProductDeactivated,
            computer_id=state.computer_id,
            product=name,
            public_id=p.public_id,
            reason=reason,
            suspended=suspended,
        )
    return emit.events


def remove(
    state: ComputerState,
    *,
    deactivated: bool,
    seats_left: tuple[str, ...],
    now: datetime,
    actor: str,
) -> list[DomainEvent]:
    if not state.exists:
        return []
    emit = Emitter(state.computer_id, state.version, now, actor)
    emit(
        ComputerRemoved,
        computer_id=state.computer_id,
        deactivated=deactivated,
        seats_left=seats_left,
    )
    return emit.events
