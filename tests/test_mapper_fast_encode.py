"""The mapper's generated encoders write exactly the bytes of the cattrs path.

Stored events written before the fast path existed (through cattrs) and after
it must be the same bytes for the same event, so seals (R31) and upcasting
keep working across versions.
"""

from __future__ import annotations

import inspect
import sys
import typing
import uuid

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from esmc_licensing.adapters.mapper import (
    EventMapper,
    converter,
    decoder,
    secrets_of,
    slow_encode_state,
    state_encoder,
)
from esmc_licensing.aggregates import AGGREGATES, KIND_OF, AggregateKind
from esmc_licensing.domain.events import CLASSES, DomainEvent
from esmc_licensing.domain.ids import PublicId
from esmc_licensing.testing.strategies import event_classes, events_of

MAPPER = EventMapper()


def test_every_registered_event_class_has_a_fast_encoder() -> None:
    for cls in CLASSES:
        topic, encode = MAPPER._encoders[cls]
        assert topic == CLASSES[cls].topic and callable(encode)


@pytest.mark.parametrize("cls", event_classes(), ids=lambda c: CLASSES[c].topic)
@given(data=st.data())
def test_fast_encoding_is_byte_identical_to_cattrs(
    cls: type[DomainEvent], data: st.DataObject
) -> None:
    event = data.draw(events_of(cls))
    topic, encode = MAPPER._encoders[cls]
    assert (topic, orjson.dumps(encode(event))) == slow_encode_state(event)
    if not secrets_of(cls):  # events with secrets are sealed after encoding (R32)
        assert MAPPER.encode_state(event) == slow_encode_state(event)
        assert MAPPER.to_stored_event(event).state == slow_encode_state(event)[1]


@pytest.mark.parametrize("cls", event_classes(), ids=lambda c: CLASSES[c].topic)
@given(data=st.data())
def test_fast_decoding_equals_cattrs(cls: type[DomainEvent], data: st.DataObject) -> None:
    event = data.draw(events_of(cls))
    _, encode = MAPPER._encoders[cls]  # the plain encoding, before secrets are sealed
    stored = orjson.loads(orjson.dumps(encode(event)))
    del stored["_v"]
    stored["originator_id"] = event.originator_id
    stored["originator_version"] = event.originator_version
    assert decoder(cls)(dict(stored)) == converter.structure(dict(stored), cls) == event


# -- aggregate states (snapshots and view rows) ------------------------------------------


def _initial_state(kind: AggregateKind) -> object:
    """The state an aggregate starts from, whatever its id (an id drawn at random)."""
    module = sys.modules[kind.evolve.__module__]
    made = module.initial
    if not inspect.signature(made).parameters:
        return made()
    id_type = next(iter(typing.get_type_hints(made).values()))
    return made(id_type(str(uuid.uuid4())) if id_type is not PublicId else PublicId("ABC-DEF-123"))


def _states(kind: AggregateKind) -> st.SearchStrategy[object]:
    """States of one aggregate kind: its initial state folded with random events of
    its classes (an event its evolve refuses in that state is left out)."""
    classes = [c for c, k in KIND_OF.items() if k is kind]

    def fold(events: list[DomainEvent]) -> object:
        state = _initial_state(kind)
        for e in events:
            try:
                state = kind.evolve(state, e)
            except Exception:  # a fact that does not fit this state
                continue
        return state

    return st.lists(st.sampled_from(classes).flatmap(events_of), max_size=8).map(fold)


@pytest.mark.parametrize("name", sorted(AGGREGATES))
@given(data=st.data())
def test_r30_state_codec_writes_and_reads_what_cattrs_does(name: str, data: st.DataObject) -> None:
    """Snapshots and view rows are written by a generated encoder and read by a
    generated decoder: the bytes of a state are those cattrs wrote (rows and
    snapshots written earlier read the same, R30), and reading gives what cattrs
    reads."""
    kind = AGGREGATES[name]
    state = data.draw(_states(kind))
    cls = kind.state_type
    written = orjson.dumps(state_encoder(cls)(state))
    assert written == orjson.dumps(converter.unstructure(state, cls))
    read = decoder(cls)(orjson.loads(written))
    assert read == converter.structure(orjson.loads(written), cls) == state
