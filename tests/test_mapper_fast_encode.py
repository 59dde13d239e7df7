"""The mapper's generated encoders write exactly the bytes of the cattrs path.

Stored events written before the fast path existed (through cattrs) and after
it must be the same bytes for the same event, so seals (R31) and upcasting
keep working across versions.
"""

from __future__ import annotations

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
)
from esmc_licensing.domain.events import CLASSES, DomainEvent
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
