"""R29/R30 round trips: every registered event survives the mapper and every store."""

from __future__ import annotations

import uuid

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmc_licensing.adapters.field_cipher import FieldCipher, process_keyring
from esmc_licensing.adapters.mapper import EventMapper, secrets_of
from esmc_licensing.domain.events import CLASSES, TOPICS, DomainEvent
from esmc_licensing.testing.strategies import (
    covered_event_classes,
    domain_events,
    event_classes,
    events_of,
)

from .conftest import AppFactory

MAPPER = EventMapper(secrets=FieldCipher(process_keyring()))


def _scaled(fraction: float) -> settings:
    """This test's examples as a fraction of the loaded profile's (ci: 25)."""
    return settings(max_examples=max(5, int(settings().max_examples * fraction)))


def test_r29_strategies_cover_every_registered_event_class() -> None:
    assert set(covered_event_classes()) == set(CLASSES)
    assert {CLASSES[c].topic for c in event_classes()} == set(TOPICS)


@pytest.mark.parametrize("cls", event_classes(), ids=lambda c: CLASSES[c].topic)
@given(data=st.data())
def test_r29_every_event_type_round_trips_through_the_mapper(
    cls: type[DomainEvent], data: st.DataObject
) -> None:
    event = data.draw(events_of(cls))
    stored = MAPPER.to_stored_event(event)
    assert stored.topic == CLASSES[cls].topic
    assert stored.originator_id == event.originator_id
    assert stored.originator_version == event.originator_version
    back = MAPPER.to_domain_event(stored)
    assert type(back) is cls
    assert back == event
    # and the stored form is stable: encoding again gives the same bytes (a sealed
    # secret, R32, takes a fresh nonce each time: the same event, other bytes)
    again = MAPPER.to_stored_event(back)
    if secrets_of(cls):
        assert MAPPER.to_domain_event(again) == event
    else:
        assert again.state == stored.state


def _fresh_ids(events: list[DomainEvent]) -> list[DomainEvent]:
    """Give each event its own aggregate (the store is shared across examples)."""
    return [
        attrs.evolve(e, originator_id=uuid.uuid4())  # type: ignore[misc]
        for e in events
    ]


@_scaled(0.6)
@given(events=st.lists(domain_events(), min_size=1, max_size=len(CLASSES)))
def test_r30_generated_events_read_back_equal_from_every_store(
    make_app: AppFactory, events: list[DomainEvent]
) -> None:
    app = make_app()
    events = _fresh_ids(events)
    start = app._core.recorder.max_notification_id() or 0
    app._core.events.put(events)  # type: ignore[arg-type]
    for e in events:
        assert list(app._core.events.get(e.originator_id)) == [e]
    # the application log gives them back in order, through the same mapper
    notes = app._core.recorder.select_notifications(
        start=start, limit=len(events) + 1, inclusive_of_start=False
    )
    assert [app._core.mapper.to_domain_event(n) for n in notes] == events


_ONE_OF_EACH = st.tuples(*(events_of(c) for c in event_classes())).map(list)


@_scaled(0.4)
@given(events=_ONE_OF_EACH)
def test_r30_every_event_type_through_the_recorder_and_a_reopened_app(
    make_app: AppFactory, events: list[DomainEvent]
) -> None:
    """One event of each registered class straight through ``recorder.insert_events``."""
    assert {type(e) for e in events} == set(CLASSES)
    app = make_app()
    events = _fresh_ids(events)
    app._core.recorder.insert_events([app._core.mapper.to_stored_event(e) for e in events])
    reopened = make_app()
    for e in events:
        assert list(reopened._core.events.get(e.originator_id)) == [e]


@given(st.uuids(), st.sampled_from(["str", "hex", "upper", "braces", "urn"]))
def test_r30_ids_read_from_stored_text_equal_the_constructors(
    value: uuid.UUID, form: str
) -> None:
    """The fast reading of a stored id gives what ``UUID(text)`` and the typed
    ids give, for every form the constructor accepts."""
    from esmc_licensing.adapters.mapper import _from_text
    from esmc_licensing.domain.ids import ComputerId, PoolId

    text = {
        "str": str(value),
        "hex": value.hex,
        "upper": str(value).upper(),
        "braces": "{" + str(value) + "}",
        "urn": value.urn,
    }[form]
    for cls in (uuid.UUID, ComputerId, PoolId):
        made = _from_text(cls, text)
        expected = cls(text)
        assert type(made) is cls
        assert made == expected and made.int == value.int
        assert str(made) == str(expected) and hash(made) == hash(expected)
        assert made.is_safe == expected.is_safe


@pytest.mark.parametrize("text", ["", "not-a-uuid", "g" * 32, "1234", "0x" + "1" * 30 + "-" * 4])
def test_r30_malformed_stored_ids_are_refused_as_by_the_constructor(text: str) -> None:
    from esmc_licensing.adapters.mapper import _from_text

    try:
        expected: object = uuid.UUID(text)
    except ValueError as e:
        expected = type(e)
    try:
        made: object = _from_text(uuid.UUID, text)
    except ValueError as e:
        made = type(e)
    assert made == expected
