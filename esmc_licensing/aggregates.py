"""The aggregates of the model, and the routing built from each event's declaration.

Every event names its aggregate where it is declared (``@event(...,
aggregate="license")``); this module maps those names to the aggregate's
``evolve`` and state class, so the command side (which folds an aggregate's
events to decide on it) and the views (which fold the same events into rows)
route an event the same way, from one table nobody keeps by hand.
``tests/test_routing.py`` fails when an event class is not folded by its
aggregate's ``evolve``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson

from . import seals
from .adapters.field_cipher import FieldCipher, open_fields, seal_fields, secret_paths
from .adapters.mapper import decoder, state_encoder
from .domain import account, computer, directory, license, pool, saved_filters, tags, task
from .domain.events import CLASSES, DomainEvent


@attrs.frozen
class AggregateKind:
    """One aggregate of the model: how its state is folded and stored."""

    name: str
    evolve: Callable[[Any, DomainEvent], Any]
    state_type: type


AGGREGATES: Mapping[str, AggregateKind] = {
    k.name: k
    for k in (
        AggregateKind("directory", directory.evolve, directory.DirectoryState),
        AggregateKind("pool", pool.evolve, pool.PoolState),
        AggregateKind("license", license.evolve, license.LicenseState),
        AggregateKind("tags", tags.evolve, tags.TagsState),
        AggregateKind("filters", saved_filters.evolve, saved_filters.FiltersState),
        AggregateKind("account", account.evolve, account.AccountState),
        AggregateKind("computer", computer.evolve, computer.ComputerState),
        AggregateKind("task", task.evolve, task.TaskState),
        AggregateKind("seals", seals.evolve, seals.SealState),
    )
}

#: event class -> the aggregate kind it belongs to (from the event's declaration)
KIND_OF: Mapping[type[DomainEvent], AggregateKind] = {
    cls: AGGREGATES[registration.aggregate] for cls, registration in CLASSES.items()
}

#: event class -> its aggregate's ``evolve``
EVOLVE: Mapping[type[DomainEvent], Callable[[Any, Any], Any]] = {
    cls: kind.evolve for cls, kind in KIND_OF.items()
}

_STATE_KINDS: dict[type, AggregateKind] = {k.state_type: k for k in AGGREGATES.values()}


def _snapshot_context(state_type: type, aggregate_id: object) -> str:
    return f"snapshot|{state_type.__qualname__}|{aggregate_id}"


def encode_state(
    state: Any, secrets: FieldCipher | None = None, aggregate_id: object = None
) -> bytes:
    """An aggregate state as JSON (snapshots), as cattrs unstructures its class.

    Its secrets (a license key, an account's password) are sealed with the
    data keys like those of events (R32); with no data key, a state holding a
    secret raises ``DataKeyMissing`` rather than be written in plain text.
    """
    state_type = type(state)
    data = state_encoder(state_type)(state)
    paths = secret_paths(state_type)
    if paths:
        seal_fields(secrets, data, paths, _snapshot_context(state_type, aggregate_id))
    return orjson.dumps(data)


def decode_state(
    state_type: type,
    data: bytes | str,
    secrets: FieldCipher | None = None,
    aggregate_id: object = None,
) -> Any:
    plain = orjson.loads(data)
    paths = secret_paths(state_type)
    if paths:
        open_fields(secrets, plain, paths, _snapshot_context(state_type, aggregate_id))
    return decoder(state_type)(plain)


def kind_of_state(state: Any) -> AggregateKind:
    return _STATE_KINDS[type(state)]


__all__ = [
    "AGGREGATES",
    "EVOLVE",
    "KIND_OF",
    "AggregateKind",
    "decode_state",
    "encode_state",
    "kind_of_state",
]
