"""Fast folds of the high-volume events, for a projection runner.

A runner holds licenses and computers as their unstructured (JSON-ready)
state (:class:`~esmc_licensing.projections.store.CodecDict`). For the events
that dominate a long log -- usage reports, agent check-ins, registrations,
activations, seats, expiration changes -- structuring the event with cattrs
and the state into attrs objects, ``evolve`` and unstructuring again costs
several times more than changing the dict in place. Each function here does
exactly what the domain's ``evolve`` does to the unstructured state, and
nothing when it cannot be sure (an older schema version of the event, an
entity not yet known): it then returns None and the runner takes the slow
path, decoding the event and folding with ``evolve``.

``tests/test_fastpath.py`` checks, with Hypothesis, that every fast fold
agrees with ``unstructure(evolve(structure(state), event))``, and that views
rebuilt with and without the fast paths are equal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..domain import computer
from ..domain.events import (
    TOPICS,
    ComputerConnected,
    ComputerRegistered,
    ExpirationChanged,
    ProductActivated,
    SeatTaken,
    UsageReported,
)
from ..domain.ids import ComputerId
from .memory import ReadModel
from .store import _UNSTRUCTURE, CodecDict

#: (model, originator id, originator version, event data) -> audit targets, or None
FastFold = Callable[[ReadModel, str, int, dict[str, Any]], "tuple[str, ...] | None"]

_fromiso = datetime.fromisoformat


def _current(data: dict[str, Any], cls: type) -> bool:
    return bool(data.get("_v", 1) == _VERSIONS[cls])


def _license_of(
    model: ReadModel, data: dict[str, Any], cls: type
) -> tuple[str, dict[str, Any]] | None:
    """The event's license as a dict to change in place, if the fast path applies."""
    if not _current(data, cls):
        return None
    pid = data["public_id"]
    d = _licenses(model).raw(pid)
    return None if d is None else (pid, d)


def _computer_of(
    model: ReadModel, oid: str, data: dict[str, Any], cls: type
) -> dict[str, Any] | None:
    """The event's computer as a dict to change in place, if the fast path applies."""
    if not _current(data, cls):
        return None
    d: dict[str, Any] | None = _computers(model).raw(oid)
    return d


def _licenses(model: ReadModel) -> CodecDict:
    return model.licenses  # type: ignore[return-value]


def _computers(model: ReadModel) -> CodecDict:
    return model.computers  # type: ignore[return-value]


def usage_reported(
    model: ReadModel, oid: str, v: int, data: dict[str, Any]
) -> tuple[str, ...] | None:
    found = _license_of(model, data, UsageReported)
    if found is None:
        return None
    pid, d = found
    d["version"] = v
    d["vendor_used_units"] = data["used_units"]
    return (f"license:{pid}",)


def expiration_changed(
    model: ReadModel, oid: str, v: int, data: dict[str, Any]
) -> tuple[str, ...] | None:
    found = _license_of(model, data, ExpirationChanged)
    if found is None:
        return None
    pid, d = found
    d["version"] = v
    d["expires"] = data["expires"]
    return (f"license:{pid}",)


def seat_taken(
    model: ReadModel, oid: str, v: int, data: dict[str, Any]
) -> tuple[str, ...] | None:
    found = _license_of(model, data, SeatTaken)
    if found is None:
        return None
    pid, d = found
    cid = data["computer_id"]
    seat = [cid, data["product"]]
    seats = d["seats"]
    if seat not in seats:
        seats.append(seat)
    d["version"] = v
    return (f"license:{pid}", f"computer:{cid}")


def computer_connected(
    model: ReadModel, oid: str, v: int, data: dict[str, Any]
) -> tuple[str, ...] | None:
    d = _computer_of(model, oid, data, ComputerConnected)
    if d is None:
        return None
    at = data["at"]
    last = d["last_connected"]
    if last is None or _fromiso(at) > _fromiso(last):
        d["last_connected"] = at
    d["version"] = v
    return (f"computer:{oid}",)


def product_activated(
    model: ReadModel, oid: str, v: int, data: dict[str, Any]
) -> tuple[str, ...] | None:
    d = _computer_of(model, oid, data, ProductActivated)
    if d is None:
        return None
    pid = data["public_id"]
    d["products"][data["product"]] = {"public_id": pid, "activated": True, "suspended": False}
    d["version"] = v
    if pid:
        return (f"computer:{oid}", f"license:{pid}")
    return (f"computer:{oid}",)


_NO_ID = ComputerId("00000000-0000-0000-0000-000000000000")
_COMPUTER = _UNSTRUCTURE["computer"](computer.initial(_NO_ID))


def computer_registered(
    model: ReadModel, oid: str, v: int, data: dict[str, Any]
) -> tuple[str, ...] | None:
    if not _current(data, ComputerRegistered):
        return None
    products: dict[str, Any] = {
        name: {"public_id": None, "activated": False, "suspended": False}
        for name in data["products"]
    }
    for name in data.get("activated_outside", ()):
        products[name] = {"public_id": None, "activated": True, "suspended": False}
    d = dict(_COMPUTER)
    d.update(
        computer_id=oid,
        version=v,
        exists=True,
        name=data["name"],
        group=data["group"],
        fingerprint=data["fingerprint"],
        agent_id=data["agent_id"],
        registered_at=data["timestamp"],
        products=products,
    )
    _computers(model).put_raw(oid, d)
    return (f"computer:{oid}",)


_BY_CLASS: dict[type, FastFold] = {
    UsageReported: usage_reported,
    ExpirationChanged: expiration_changed,
    SeatTaken: seat_taken,
    ComputerConnected: computer_connected,
    ProductActivated: product_activated,
    ComputerRegistered: computer_registered,
}
_VERSIONS: dict[type, int] = {}
#: by stored topic
FAST_FOLDS: dict[str, FastFold] = {}
for _topic, _registration in TOPICS.items():
    if _registration.cls in _BY_CLASS:
        _VERSIONS[_registration.cls] = _registration.version
        FAST_FOLDS[_topic] = _BY_CLASS[_registration.cls]

__all__ = ["FAST_FOLDS", "FastFold"]
