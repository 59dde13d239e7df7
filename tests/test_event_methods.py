"""Events compare, hash and show themselves as attrs classes do (one set of methods
on ``DomainEvent`` instead of generated per class), and hide their secrets (R32)."""

from __future__ import annotations

import attrs

from esmc_licensing.domain.events import CLASSES, DomainEvent


def _filled(cls: type[DomainEvent], marker: str) -> DomainEvent:
    event = object.__new__(cls)
    for a in attrs.fields(cls):
        object.__setattr__(event, a.name, f"{marker}:{a.name}")
    return event


def test_r32_every_event_compares_all_fields_and_hides_secret_fields_in_repr() -> None:
    assert len(CLASSES) > 40
    for cls in CLASSES:
        a, b = _filled(cls, "v"), _filled(cls, "v")
        assert (a == b) is True and (a != b) is False and hash(a) == hash(b)
        for field in attrs.fields(cls):
            c = _filled(cls, "v")
            object.__setattr__(c, field.name, "other")
            assert (a != c) is True and (a == c) is False, (cls.__name__, field.name)
        shown = [f"{f.name}='v:{f.name}'" for f in attrs.fields(cls) if f.repr]
        assert repr(a) == f"{cls.__name__}({', '.join(shown)})"
        for field in attrs.fields(cls):
            if not field.repr:
                assert f"v:{field.name}" not in repr(a)
    secret = [f.name for cls in CLASSES for f in attrs.fields(cls) if not f.repr]
    assert {"key", "credentials"} <= set(secret)


def test_r32_events_of_different_classes_are_never_equal() -> None:
    classes = list(CLASSES)
    a, b = _filled(classes[0], "v"), _filled(classes[1], "v")
    assert (a != b) is True and (a == b) is False
    assert (a == 1) is False and (a != 1) is True
