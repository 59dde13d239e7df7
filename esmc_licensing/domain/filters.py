"""R8a: license filters, and their matching as a pure function."""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from .errors import InvalidInput
from .values import LicenseType, StatusLevel, StatusReason


def _iterable(values: object, what: str) -> Iterable[object]:
    """One value or a collection of values; anything else is refused (not a TypeError)."""
    if isinstance(values, (str, enum.Enum)):
        return (values,)
    if not isinstance(values, Iterable):
        raise InvalidInput(f"{what} must be a list of values, not {type(values).__name__}")
    return values


def _enum_tuple(enum_cls: type, values: Iterable[object]) -> tuple[object, ...]:
    values = _iterable(values, f"a filter's {enum_cls.__name__} values")
    out = []
    for v in values:
        if isinstance(v, enum_cls):
            out.append(v)
            continue
        try:
            out.append(enum_cls[str(v).upper()])  # type: ignore[index]
        except KeyError:
            names = ", ".join(m.name for m in enum_cls)  # type: ignore[attr-defined]
            raise InvalidInput(f"{v!r} is not one of {names}") from None
    return tuple(sorted(set(out), key=lambda m: m.name))  # type: ignore[attr-defined]


def _levels(values: Iterable[object]) -> tuple[StatusLevel, ...]:
    return _enum_tuple(StatusLevel, values)  # type: ignore[return-value]


def _reasons(values: Iterable[object]) -> tuple[StatusReason, ...]:
    return _enum_tuple(StatusReason, values)  # type: ignore[return-value]


def _types(values: Iterable[object]) -> tuple[LicenseType, ...]:
    return _enum_tuple(LicenseType, values)  # type: ignore[return-value]


def _strings(values: Iterable[object]) -> tuple[str, ...]:
    values = _iterable(values, "a filter's tags and products")
    return tuple(sorted({str(v) for v in values}))


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _days(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"depleting within takes a whole number of days ≥ 0, not {value!r}")
    return value


@attrs.frozen
class LicenseFilter:
    """Every field narrows the list; an empty field does not filter.

    Within a field the values are alternatives (any level of ``levels``);
    between fields they all must hold. ``text`` matches Public ID, product and
    owner, case-insensitively. ``depleting_within`` keeps the licenses whose
    forecast reaches their units within that many days (R36).
    """

    levels: tuple[StatusLevel, ...] = attrs.field(default=(), converter=_levels)
    reasons: tuple[StatusReason, ...] = attrs.field(default=(), converter=_reasons)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    types: tuple[LicenseType, ...] = attrs.field(default=(), converter=_types)
    products: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    text: str | None = attrs.field(default=None, converter=_text)
    depleting_within: int | None = attrs.field(default=None, converter=_days)

    def matches(
        self,
        *,
        level: StatusLevel,
        reasons: frozenset[StatusReason],
        tags: frozenset[str],
        license_type: LicenseType,
        product: str,
        public_id: str,
        owner: str,
    ) -> bool:
        if self.levels and level not in self.levels:
            return False
        if self.reasons and reasons.isdisjoint(self.reasons):
            return False
        if self.tags and {t.casefold() for t in tags}.isdisjoint(
            t.casefold() for t in self.tags
        ):
            return False  # tag names are unique case-insensitively (R28)
        if self.types and license_type not in self.types:
            return False
        if self.products and product.casefold() not in {p.casefold() for p in self.products}:
            return False  # product names match case-insensitively, as text does
        if self.text is not None:
            needle = self.text.casefold()
            if not any(needle in field.casefold() for field in (public_id, product, owner)):
                return False
        return True
