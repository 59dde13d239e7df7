"""The tag catalogue decider (R28).

One aggregate holds every tag and where it is assigned, so that deleting a tag
can unassign it everywhere in the same atomic save, and a racing assignment of
a tag being deleted loses on the version check instead of surviving its tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import attrs

from .errors import AlreadyExists, NotFound
from .events import DomainEvent, Emitter, TagAssigned, TagCreated, TagDeleted, TagUnassigned
from .ids import TAGS_ID
from .persistent_set import PersistentSet
from .values import check_name, lookup_name, name_key


class TagTargets(PersistentSet[str]):
    """Where a tag is assigned (``license:…``, ``pool:…``, ``computer:…``): an
    assignment makes a new set sharing the rest, so tagging the 10,000th object,
    or deleting a tag assigned to 10,000 (one unassignment each), does not copy
    them all each time. Stored as the list their frozenset was stored as."""

    __slots__ = ()


NOWHERE = TagTargets()


@attrs.frozen
class TagsState:
    version: int = 0
    tags: Mapping[str, TagTargets] = attrs.field(factory=dict)

    def canonical(self, name: str) -> str | None:
        """Tag names are unique case-insensitively; this finds the stored spelling."""
        key = name_key(name)
        for existing in self.tags:
            if name_key(existing) == key:
                return existing
        return None


def initial() -> TagsState:
    return TagsState()


def evolve(state: TagsState, event: DomainEvent) -> TagsState:
    v = event.originator_version
    tags = state.tags
    if isinstance(event, TagCreated):
        tags = {**tags, event.name: NOWHERE}
    elif isinstance(event, TagDeleted):
        tags = {k: t for k, t in tags.items() if k != event.name}
    elif isinstance(event, TagAssigned):
        tags = {**tags, event.name: tags.get(event.name, NOWHERE).with_item(event.target)}
    elif isinstance(event, TagUnassigned):
        tags = {**tags, event.name: tags.get(event.name, NOWHERE).without_item(event.target)}
    return TagsState(version=v, tags=tags)


def _existing(state: TagsState, name: str) -> str:
    wanted = lookup_name("tag", name)  # lenient: an old tag R33 now refuses can still go
    found = state.canonical(wanted)
    if found is None:
        raise NotFound("tag", wanted)
    return found


def create(state: TagsState, name: str, now: datetime, actor: str) -> list[DomainEvent]:
    name = check_name("tag", name, max_length=64)
    if state.canonical(name) is not None:
        raise AlreadyExists(f"a tag named {name!r} already exists")
    emit = Emitter(TAGS_ID, state.version, now, actor)
    emit(TagCreated, name=name)
    return emit.events


def delete(state: TagsState, name: str, now: datetime, actor: str) -> list[DomainEvent]:
    """Deleting a tag unassigns it everywhere first, in the same decision."""
    found = _existing(state, name)
    emit = Emitter(TAGS_ID, state.version, now, actor)
    for target in sorted(state.tags[found]):
        emit(TagUnassigned, name=found, target=target)
    emit(TagDeleted, name=found)
    return emit.events


def assign(
    state: TagsState, name: str, target: str, now: datetime, actor: str
) -> list[DomainEvent]:
    found = _existing(state, name)
    if target in state.tags[found]:
        return []
    emit = Emitter(TAGS_ID, state.version, now, actor)
    emit(TagAssigned, name=found, target=target)
    return emit.events


def unassign(
    state: TagsState, name: str, target: str, now: datetime, actor: str
) -> list[DomainEvent]:
    found = _existing(state, name)
    if target not in state.tags[found]:
        return []
    emit = Emitter(TAGS_ID, state.version, now, actor)
    emit(TagUnassigned, name=found, target=target)
    return emit.events


def unassign_target(state: TagsState, target: str, emit: Emitter) -> None:
    """Take every tag off a target that is going away (a removed pool or license)."""
    for name, targets in sorted(state.tags.items()):
        if target in targets:
            emit(TagUnassigned, name=name, target=target)
