"""Fast folds of the frequent events, for a projection runner.

A runner holds licenses and computers as their unstructured (JSON-ready)
state (:class:`~esmc_licensing.projections.store.CodecDict`). For the events
that dominate a long log -- usage reports, agent check-ins, registrations,
activations, seats, expiration changes, licenses added and joining pools,
pools created and moved, tags assigned -- structuring the event with cattrs,
``evolve`` and unstructuring again costs several times more than the change
itself. Each function here does exactly what the read model's ``apply``
does for its event (the domain's ``evolve``, pool placement, tag indexes,
audit targets), and nothing when it cannot be sure (an older schema version
of the event, an entity not yet known, a pool re-created over members): it
then returns None and the runner takes the slow path, decoding the event and
folding with ``evolve``.

The small changes to licenses and computers (usage, expiration, seats,
check-ins, activations) are recorded as a *patch* of the entity
(:meth:`CodecDict.patch <esmc_licensing.projections.store.CodecDict.patch>`),
merged into its JSON only when the entity is needed whole: a check-in then
costs a dict lookup instead of parsing and re-encoding the computer.

A fold records the audit references to licenses and computers itself, by
the entity's own key (``CodecDict.ref``), and returns only the other
targets: a rebuild holds the references of every entity until its one write,
and keyed by the string the entity table already holds they cost no second
string and no hash of a ``"computer:" + id`` made for each event.

The runner's read model keeps no ``seen`` and no ``states`` (see
:func:`~esmc_licensing.projections.store.tracked_model`), so the folds do
not feed them.

``tests/test_fastpath.py`` checks, with Hypothesis, that every fast fold
agrees with the slow path: the views (entity rows and audit references)
projected with and without the fast folds are equal, for random events of
those classes interleaved with the events that go the slow path, and
for views rebuilt from a bulk log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from ..domain import computer, license
from ..domain.events import (
    CLASSES,
    TOPICS,
    ComputerConnected,
    ComputerRegistered,
    ExpirationChanged,
    LicenseAdded,
    LicenseJoinedPool,
    PoolCreated,
    PoolMoved,
    ProductActivated,
    SeatTaken,
    TagAssigned,
    UsageReported,
)
from ..domain.evolving import replace
from ..domain.ids import ComputerId, GroupId, LicenseKey, PoolId, PublicId
from ..domain.pool import PoolState
from ..domain.tags import TagsState
from ..domain.values import LicenseType, Source
from .memory import ReadModel
from .store import _UNSTRUCTURE, CodecDict

#: (model, originator id, originator version, event data, log position) -> the
#: audit targets other than licenses and computers, or None for "take the slow
#: path"; references to licenses and computers are recorded by the fold itself
#: (:meth:`CodecDict.ref <esmc_licensing.projections.store.CodecDict.ref>`),
#: by the entity's own key, and only once it is sure not to return None
FastFold = Callable[[ReadModel, str, int, dict[str, Any], int], "tuple[str, ...] | None"]

_NONE: tuple[str, ...] = ()

_fromiso = datetime.fromisoformat
_EMPTY: frozenset[Any] = frozenset()

#: ids by their stored text: pools and groups are few and named by many events
_pool_id = lru_cache(maxsize=1 << 16)(PoolId)
_group_id = lru_cache(maxsize=1 << 12)(GroupId)


def _version(cls: type) -> int:
    return CLASSES[cls].version


_V_USAGE = _version(UsageReported)
_V_EXPIRATION = _version(ExpirationChanged)
_V_SEAT = _version(SeatTaken)
_V_CONNECTED = _version(ComputerConnected)
_V_ACTIVATED = _version(ProductActivated)
_V_REGISTERED = _version(ComputerRegistered)
_V_ADDED = _version(LicenseAdded)
_V_JOINED = _version(LicenseJoinedPool)
_V_POOL_CREATED = _version(PoolCreated)
_V_MOVED = _version(PoolMoved)
_V_TAG_ASSIGNED = _version(TagAssigned)


def _licenses(model: ReadModel) -> CodecDict:
    return model.licenses  # type: ignore[return-value]


def _computers(model: ReadModel) -> CodecDict:
    return model.computers  # type: ignore[return-value]


# -- licenses ---------------------------------------------------------------------


def _license_field_fold(version: int, field: str, source: str) -> FastFold:
    """The fold of an event that sets one field of a license from one of its own."""

    def fold(
        model: ReadModel, oid: str, v: int, data: dict[str, Any], position: int
    ) -> tuple[str, ...] | None:
        if data.get("_v", 1) != version:
            return None
        pid = data["public_id"]
        entities = _licenses(model)
        p = entities.patch(pid)
        if p is None:
            return None
        p["version"] = v
        p[field] = data[source]
        entities.ref(pid, position)
        return _NONE

    return fold


usage_reported = _license_field_fold(_V_USAGE, "vendor_used_units", "used_units")
expiration_changed = _license_field_fold(_V_EXPIRATION, "expires", "expires")


#: pending seats of a license merged into it past this many (its patch stays small)
_MAX_PENDING_SEATS = 4


def seat_taken(
    model: ReadModel, oid: str, v: int, data: dict[str, Any], position: int
) -> tuple[str, ...] | None:
    if data.get("_v", 1) != _V_SEAT:
        return None
    pid = data["public_id"]
    licenses = _licenses(model)
    p = licenses.patch(pid)
    if p is None:
        return None
    cid = data["computer_id"]
    seat = [cid, data["product"]]
    p["version"] = v
    seats = p.get("+seats")
    if seats is None:
        p["+seats"] = [seat]
    else:
        seats.append(seat)
        if len(seats) > _MAX_PENDING_SEATS:
            licenses.raw(pid)  # merges the patch (the license then holds its seats)
    licenses.ref(pid, position)
    _computers(model).ref(cid, position)
    return _NONE


_LICENSE = _UNSTRUCTURE["license"](license.initial(PublicId("000-000-000")))
_MASK = "0000-0000-0000-0000-"


def license_added(
    model: ReadModel, oid: str, v: int, data: dict[str, Any], position: int
) -> tuple[str, ...] | None:
    """A license's whole state, as ``evolve`` builds it (its seats start empty).

    Values are normalised as decoding and encoding again would: ids and
    enums validated, the date re-written, the key masked (R2) like
    ``store._mask_key`` does.
    """
    if data.get("_v", 1) != _V_ADDED:
        return None
    pid = str(PublicId(data["public_id"]))
    expires = data["expires"]
    key = data.get("key")
    units = data["units"]
    used = data["used_units"]
    d = dict(_LICENSE)
    d.update(
        public_id=pid,
        version=v,
        exists=True,
        pool_id=str(PoolId(data["pool_id"])),
        source=Source(data["source"]).value,
        license_type=LicenseType(data["license_type"]).value,
        product=data["product"],
        product_code=data["product_code"],
        units=units,
        offline_units=data["offline_units"],
        subunits=data["subunits"],
        expires=None if expires is None else date.fromisoformat(expires).isoformat(),
        subscription=data["subscription"],
        owner=data["owner"],
        contact=data["contact"],
        license_user=data["license_user"],
        registered=data["registered"],
        registration_url=data["registration_url"],
        suspended=data["suspended"],
        obsolete=data["obsolete"],
        vendor_used_units=used,
        overused=used > units,
        key=None if key is None else _MASK + LicenseKey(key).reveal()[-4:],
        seats=[],
    )
    licenses = _licenses(model)
    licenses.put_raw(pid, d)
    licenses.ref(pid, position)
    return _NONE


# -- computers --------------------------------------------------------------------


def computer_connected(
    model: ReadModel, oid: str, v: int, data: dict[str, Any], position: int
) -> tuple[str, ...] | None:
    if data.get("_v", 1) != _V_CONNECTED:
        return None
    entities = _computers(model)
    p = entities.patch(oid)
    if p is None:
        return None
    at = data["at"]
    # the latest of the check-ins; merged with the stored one by ``merge_patch``
    # (parsing both is cheaper than checking that their text compares as the
    # times do: 0.1 µs against 0.2 µs or more)
    pending = p.get(">last_connected")
    if pending is None or _fromiso(at) > _fromiso(pending):
        p[">last_connected"] = at
    p["version"] = v
    entities.ref(oid, position)
    return _NONE


def product_activated(
    model: ReadModel, oid: str, v: int, data: dict[str, Any], position: int
) -> tuple[str, ...] | None:
    if data.get("_v", 1) != _V_ACTIVATED:
        return None
    entities = _computers(model)
    p = entities.patch(oid)
    if p is None:
        return None
    pid = data["public_id"]
    product = {"public_id": pid, "activated": True, "suspended": False}
    products = p.get(".products")
    if products is None:
        p[".products"] = {data["product"]: product}
    else:
        products[data["product"]] = product
    p["version"] = v
    entities.ref(oid, position)
    if pid:
        _licenses(model).ref(pid, position)
    return _NONE


_NO_ID = ComputerId("00000000-0000-0000-0000-000000000000")
_COMPUTER = _UNSTRUCTURE["computer"](computer.initial(_NO_ID))


def computer_registered(
    model: ReadModel, oid: str, v: int, data: dict[str, Any], position: int
) -> tuple[str, ...] | None:
    if data.get("_v", 1) != _V_REGISTERED:
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
    computers = _computers(model)
    computers.put_raw(oid, d)
    computers.ref(oid, position)
    return _NONE


# -- pools --------------------------------------------------------------------------


def _ref_members(model: ReadModel, public_ids: frozenset[PublicId], position: int) -> None:
    ref = _licenses(model).ref
    for p in public_ids:
        ref(p, position)


#: the prefixes of targets whose references a fold records by the entity's key
_BY_KEY = ("license:", "computer:")


def pool_created(
    model: ReadModel, oid: str, v: int, data: dict[str, Any], position: int
) -> tuple[str, ...] | None:
    """A new pool; a pool re-created over members it still lists goes the slow way."""
    if data.get("_v", 1) != _V_POOL_CREATED:
        return None
    pool_id = _pool_id(oid)
    pools = model.pools
    before = pools.get(pool_id)
    if before is not None and before.public_ids:
        return None
    pools[pool_id] = PoolState(
        pool_id=pool_id,
        version=v,
        exists=True,
        name=data["name"],
        group=_group_id(data["group"]),
        source=Source(data["source"]),
        indivisible=data.get("indivisible", False),
        company=data.get("company"),
    )
    return (f"pool:{pool_id}",)


def _known_pool(
    model: ReadModel, oid: str, data: dict[str, Any], version: int
) -> tuple[PoolId, PoolState] | None:
    """The event's pool, if the fast path applies (current schema, pool known)."""
    if data.get("_v", 1) != version:
        return None
    pool_id = _pool_id(oid)
    before = model.pools.get(pool_id)
    return None if before is None else (pool_id, before)


def license_joined_pool(
    model: ReadModel, oid: str, v: int, data: dict[str, Any], position: int
) -> tuple[str, ...] | None:
    """The pool gains a member; only the joining license's history names it (R29)."""
    found = _known_pool(model, oid, data, _V_JOINED)
    if found is None:
        return None
    pool_id, before = found
    public_id = PublicId(data["public_id"])
    model.pools[pool_id] = replace(before, version=v, public_ids=before.public_ids | {public_id})
    _licenses(model).ref(public_id, position)
    return (f"pool:{pool_id}",)


def pool_moved(
    model: ReadModel, oid: str, v: int, data: dict[str, Any], position: int
) -> tuple[str, ...] | None:
    """The pool changes group; its licenses move with it and their histories say so."""
    found = _known_pool(model, oid, data, _V_MOVED)
    if found is None:
        return None
    pool_id, before = found
    model.pools[pool_id] = replace(before, version=v, group=_group_id(data["to_group"]))
    _ref_members(model, before.public_ids, position)
    return (f"pool:{pool_id}",)


# -- tags ---------------------------------------------------------------------------


def tag_assigned(
    model: ReadModel, oid: str, v: int, data: dict[str, Any], position: int
) -> tuple[str, ...] | None:
    """The tag catalogue and the target's tag set; a pool's tag is in its licenses' histories.

    ``tags.evolve`` copies the tag's whole target set for every assignment;
    assigning a tag where it already is gives an equal set, so the existing
    catalogue is kept (states are never changed in place, so sharing is safe).
    """
    if data.get("_v", 1) != _V_TAG_ASSIGNED:
        return None
    name = data["name"]
    target = data["target"]
    state = model.tags
    catalogue = state.tags
    assigned = catalogue.get(name, _EMPTY)
    if target not in assigned or name not in catalogue:
        catalogue = {**catalogue, name: assigned | {target}}
    model.tags = TagsState(version=v, tags=catalogue)
    tags_of = model.tags_of
    tags_of[target] = tags_of.get(target, _EMPTY) | {name}
    if target.startswith("pool:"):
        pool = model.pools.get(_pool_id(target[5:]))
        if pool is not None:
            _ref_members(model, pool.public_ids, position)
    elif target.startswith(_BY_KEY):
        kind, _, key = target.partition(":")
        (_licenses(model) if kind == "license" else _computers(model)).ref(key, position)
        return ("tag:" + name,)
    return (target, "tag:" + name)


_BY_CLASS: dict[type, FastFold] = {
    UsageReported: usage_reported,
    ExpirationChanged: expiration_changed,
    SeatTaken: seat_taken,
    LicenseAdded: license_added,
    ComputerConnected: computer_connected,
    ProductActivated: product_activated,
    ComputerRegistered: computer_registered,
    PoolCreated: pool_created,
    LicenseJoinedPool: license_joined_pool,
    PoolMoved: pool_moved,
    TagAssigned: tag_assigned,
}
#: by stored topic
FAST_FOLDS: dict[str, FastFold] = {
    topic: _BY_CLASS[registration.cls]
    for topic, registration in TOPICS.items()
    if registration.cls in _BY_CLASS
}

__all__ = ["FAST_FOLDS", "FastFold"]
