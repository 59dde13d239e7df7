"""Saved filter presets per user (R8a): one small aggregate per user."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import attrs

from .errors import InvalidInput, NotFound
from .events import DomainEvent, Emitter, FilterDeleted, FilterSaved
from .evolving import replace
from .filters import LicenseFilter
from .ids import UserId, filters_aggregate_id
from .values import check_name, lookup_name, normalise_name


@attrs.frozen
class FiltersState:
    user: UserId
    version: int = 0
    presets: Mapping[str, LicenseFilter] = attrs.field(factory=dict)


def initial(user: UserId) -> FiltersState:
    return FiltersState(user=user)


def evolve(state: FiltersState, event: DomainEvent) -> FiltersState:
    v = event.originator_version
    if isinstance(event, FilterSaved):
        return replace(state, version=v, presets={**state.presets, event.name: event.filter})
    if isinstance(event, FilterDeleted):
        presets = {k: f for k, f in state.presets.items() if k != event.name}
        return replace(state, version=v, presets=presets)
    return replace(state, version=v)


def save(
    state: FiltersState, name: str, license_filter: LicenseFilter, now: datetime, actor: str
) -> list[DomainEvent]:
    name = check_name("filter", name)
    if not isinstance(license_filter, LicenseFilter):
        raise InvalidInput("save_filter needs a LicenseFilter")
    if state.presets.get(name) == license_filter:
        return []
    emit = Emitter(filters_aggregate_id(state.user), state.version, now, actor)
    emit(FilterSaved, user=state.user, name=name, filter=license_filter)
    return emit.events


def delete(state: FiltersState, name: str, now: datetime, actor: str) -> list[DomainEvent]:
    wanted = lookup_name("filter", name)  # lenient: an old filter R33 now refuses can go
    found = next((n for n in state.presets if normalise_name(n) == wanted), None)
    if found is None:
        raise NotFound("saved filter", wanted)
    name = found
    emit = Emitter(filters_aggregate_id(state.user), state.version, now, actor)
    emit(FilterDeleted, user=state.user, name=name)
    return emit.events
