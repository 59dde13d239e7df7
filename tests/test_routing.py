"""Every event is routed: to its aggregate's ``evolve`` and to a handler of the views (R29, R30).

An event class declares its aggregate (``@event(..., aggregate=...)``); the
command side folds it with that aggregate's ``evolve``
(:data:`esmc_licensing.aggregates.AGGREGATES`) and the views with that
aggregate's handler (:data:`esmc_licensing.projections.fold.HANDLERS`). A
new event class nobody taught an ``evolve`` or a handler about would be
silently dropped from replays (R30); these tests fail instead.

Every ``evolve`` sets the state's version to the event's version for each
event of its aggregate, including those it otherwise leaves alone
(``ProductInstalled`` of a product already installed changes nothing but the
version). That alone does not prove an event is folded: every ``evolve``
but ``seals.evolve`` ends with a catch-all ``return replace(state,
version=v)`` (``seals.evolve`` with ``return state``) that an unhandled
event would fall through to. So each ``evolve`` is also checked to name
every event class of its aggregate in a branch.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmc_licensing import seals
from esmc_licensing.aggregates import AGGREGATES, EVOLVE, KIND_OF
from esmc_licensing.domain import (
    account,
    computer,
    directory,
    license,
    pool,
    saved_filters,
    tags,
    task,
)
from esmc_licensing.domain.events import AGGREGATE_NAMES, CLASSES, DomainEvent
from esmc_licensing.domain.ids import ComputerId, PoolId, PublicId, TaskId, UserId
from esmc_licensing.projections import fold
from esmc_licensing.projections.tables import TABLES
from esmc_licensing.testing.strategies import covered_event_classes, events_of

CLASS_NAMES = sorted(cls.__name__ for cls in CLASSES)
BY_NAME = {cls.__name__: cls for cls in CLASSES}


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_r30_every_event_class_names_an_aggregate_with_an_evolve_and_a_view_handler(
    name: str,
) -> None:
    cls = BY_NAME[name]
    aggregate = CLASSES[cls].aggregate
    assert aggregate in AGGREGATE_NAMES
    assert aggregate in AGGREGATES, f"{name}: aggregate {aggregate!r} has no evolve"
    assert aggregate in fold.HANDLERS, f"{name}: aggregate {aggregate!r} has no view handler"
    assert KIND_OF[cls] is AGGREGATES[aggregate]
    assert EVOLVE[cls] is AGGREGATES[aggregate].evolve


def test_r30_the_routing_tables_cover_the_same_aggregates() -> None:
    assert set(AGGREGATES) == set(AGGREGATE_NAMES) == set(fold.HANDLERS)
    # every aggregate has events (else its evolve and handler are dead code)
    assert {r.aggregate for r in CLASSES.values()} == set(AGGREGATES)


def test_r30_every_entity_the_fold_writes_has_a_view_table() -> None:
    """The fold writes rows of these kinds; the others (directory, tags, seals) are
    read from their aggregates or kept as tags and audit references."""
    assert set(fold._ENTITY_KINDS) == set(TABLES)
    assert set(TABLES) <= set(AGGREGATES)
    for kind, table in TABLES.items():
        assert table.state_type is AGGREGATES[kind].state_type


def test_the_event_strategies_cover_every_event_class() -> None:
    assert covered_event_classes() == sorted(CLASSES, key=lambda c: CLASSES[c].topic)


def _initial(aggregate: str, event: Any) -> Any:
    """The aggregate's initial state, for the entity the event belongs to."""
    if aggregate == "directory":
        return directory.initial()
    if aggregate == "tags":
        return tags.initial()
    if aggregate == "seals":
        return seals.initial()
    if aggregate == "license":
        return license.initial(PublicId(event.public_id))
    if aggregate == "pool":
        return pool.initial(PoolId(event.originator_id))
    if aggregate == "filters":
        return saved_filters.initial(UserId(event.user))
    if aggregate == "account":
        return account.initial(event.originator_id)
    if aggregate == "computer":
        return computer.initial(ComputerId(event.originator_id))
    if aggregate == "task":
        return task.initial(TaskId(event.originator_id))
    raise AssertionError(f"teach this test the initial state of {aggregate!r}")


@st.composite
def _fold_cases(draw: st.DrawFn, cls: type[DomainEvent]) -> tuple[Any, DomainEvent]:
    """A state of the event's aggregate (initial, or after another of its events)
    and an event of ``cls``."""
    aggregate = CLASSES[cls].aggregate
    evolve = AGGREGATES[aggregate].evolve
    e = draw(events_of(cls))
    state = _initial(aggregate, e)
    siblings = sorted(
        (c for c, r in CLASSES.items() if r.aggregate == aggregate),
        key=lambda c: CLASSES[c].topic,
    )
    if draw(st.booleans()):
        before = draw(st.sampled_from(siblings).flatmap(events_of))
        state = evolve(state, before)
    return state, e


class _Recorder:
    """A :class:`fold.Storage` that keeps what it is given."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Any] = {}
        self.refs: list[tuple[str, int]] = []

    def get(self, kind: str, key: str) -> Any | None:
        return self.rows.get((kind, key))

    def put(self, kind: str, key: str, state: Any) -> None:
        self.rows[(kind, key)] = state

    def ref(self, target: str, position: int) -> None:
        self.refs.append((target, position))

    def tag(self, target: str, name: str) -> None:
        pass

    def untag(self, target: str, name: str) -> None:
        pass

    def untag_all(self, target: str) -> None:
        pass

    def drop_tag(self, name: str) -> None:
        pass


@pytest.mark.parametrize("name", CLASS_NAMES)
@settings(max_examples=max(5, settings().max_examples // 5))
@given(data=st.data())
def test_r30_evolve_folds_every_event_class_into_its_version(name: str, data: Any) -> None:
    cls = BY_NAME[name]
    aggregate = CLASSES[cls].aggregate
    evolve = AGGREGATES[aggregate].evolve
    state, e = data.draw(_fold_cases(cls))
    after: Any = evolve(state, e)
    assert after.version == e.originator_version, (
        f"{aggregate}.evolve left {name} out: the version did not move to the event's"
    )
    assert isinstance(after, AGGREGATES[aggregate].state_type)
    assert EVOLVE[cls](state, e) == after  # the command side's routing: the same fold


def _isinstance_names(function: Any) -> set[str]:
    """The class names an evolve function tests its event against (``isinstance``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    names: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "isinstance"
            and len(node.args) == 2
        ):
            kinds = node.args[1]
            for n in kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]:
                if isinstance(n, ast.Name):
                    names.add(n.id)
    return names


@pytest.mark.parametrize("aggregate", sorted(AGGREGATES))
def test_r30_each_evolve_has_a_branch_for_every_event_of_its_aggregate(aggregate: str) -> None:
    """The version alone does not show an ignored event: every ``evolve`` but
    ``seals.evolve`` ends with a catch-all that sets it. So each must name every
    event class of its aggregate in a branch of its own."""
    mine = {c.__name__ for c, r in CLASSES.items() if r.aggregate == aggregate}
    missing = mine - _isinstance_names(AGGREGATES[aggregate].evolve)
    assert not missing, f"{aggregate}.evolve has no branch for {sorted(missing)}"
