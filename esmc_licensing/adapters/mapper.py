"""The event store mapping: attrs events <-> eventsourcing stored events.

One ``cattrs`` converter (orjson preconfiguration) unstructures events to
plain data and ``orjson`` encodes it. The stored topic is the event's
registered name, and the state carries its schema version under ``_v``;
decoding runs the registered upcasters from that version to the current one,
so old histories still load after an event class changes.

Measured (see docs/performance.md) this is several times faster than
eventsourcing's default JSON transcoder with its object hooks, and it avoids
the runtime ``Protocol`` checks of the stock mapper.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, get_args, get_origin

import attrs
import immutables
import orjson
from cattrs.preconf.orjson import make_converter
from eventsourcing.persistence import (
    Cipher,
    Compressor,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
)

from ..domain.credentials import Credentials
from ..domain.events import CLASSES, TOPICS, DomainEvent
from ..domain.ids import LicenseKey, PublicId, _Id
from ..domain.persistent_set import PersistentSet
from .field_cipher import (
    FieldCipher,
    credentials_data,
    credentials_from_data,
    license_key_data,
    license_key_from_data,
    open_fields,
    seal_fields,
    secret_paths,
)

converter = make_converter(detailed_validation=False)


_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def _from_text(cls: type[uuid.UUID], text: str) -> uuid.UUID:
    """``cls(text)`` for a stored id: a canonical UUID's digits are read without
    ``UUID.__init__``'s argument handling (most events name one or two ids);
    anything else goes through the constructor, which checks it."""
    digits = text.replace("-", "")
    if len(digits) == 32 and (len(text) == 32 or len(text) == 36):
        try:
            value = int(digits, 16)
        except ValueError:
            return cls(text)
        new = _new(cls)
        _set(new, "int", value)
        _set(new, "is_safe", _UNKNOWN)
        return new
    return cls(text)


@functools.lru_cache(maxsize=1 << 12)
def _parsed(cls: type[uuid.UUID], text: str) -> uuid.UUID:
    """Ids are immutable: one object per (type, text) serves every event naming it."""
    return _from_text(cls, text)


def _to_uuid(value: object, cls: type[uuid.UUID]) -> uuid.UUID:
    if type(value) is cls:
        return value
    if isinstance(value, uuid.UUID):
        return cls(int=value.int) if cls is uuid.UUID else cls(str(value))
    return _parsed(cls, str(value))  # type: ignore[arg-type]


converter.register_unstructure_hook(PublicId, str)
#: Public IDs by their stored text (validated once each: a log names the same
#: licenses in most of its events)
_cached_public_id = functools.lru_cache(maxsize=1 << 14)(PublicId)


def _public_id(value: object) -> PublicId:
    if type(value) is str or type(value) is PublicId:
        return _cached_public_id(value)
    return PublicId(value)  # refused as the constructor refuses it


converter.register_structure_hook(PublicId, lambda v, _: _public_id(v))
converter.register_unstructure_hook(LicenseKey, license_key_data)
converter.register_structure_hook(LicenseKey, lambda v, _: license_key_from_data(v))
converter.register_unstructure_hook(Credentials, credentials_data)
converter.register_structure_hook(Credentials, lambda v, _: credentials_from_data(v))
converter.register_unstructure_hook_func(
    lambda t: isinstance(t, type) and issubclass(t, uuid.UUID), str
)
converter.register_structure_hook_func(
    lambda t: isinstance(t, type) and issubclass(t, uuid.UUID), _to_uuid
)


def _is_persistent_set(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, PersistentSet)


def _item_type(t: type[PersistentSet[Any]]) -> Any:
    """``X`` of ``class SeatSet(PersistentSet[X])``."""
    for base in getattr(t, "__orig_bases__", ()):
        if get_origin(base) is PersistentSet:
            return get_args(base)[0]
    return Any


def _unstructure_persistent_set(t: Any) -> Callable[[Any], Any]:
    """A license's seats, a pool's licenses, a tag's targets: stored as the list
    their frozenset was (snapshots and view rows written then read the same)."""
    item = converter.get_unstructure_hook(_item_type(t))
    return lambda items: [item(x) for x in items]


def _structure_persistent_set(t: Any) -> Callable[[Any, Any], Any]:
    item_type = _item_type(t)
    item = converter.get_structure_hook(item_type)
    return lambda data, _: t(item(x, item_type) for x in data)


converter.register_unstructure_hook_factory(_is_persistent_set, _unstructure_persistent_set)
converter.register_structure_hook_factory(_is_persistent_set, _structure_persistent_set)


def _is_persistent_map(t: Any) -> bool:
    return t is immutables.Map or get_origin(t) is immutables.Map


def _unstructure_persistent_map(t: Any) -> Callable[[Any], Any]:
    """A task's targets (``immutables.Map``): stored as the dict they were before."""
    key_type, value_type = get_args(t) or (Any, Any)
    key, value = converter.get_unstructure_hook(key_type), converter.get_unstructure_hook(
        value_type
    )
    return lambda m: {key(k): value(v) for k, v in m.items()}


def _structure_persistent_map(t: Any) -> Callable[[Any, Any], Any]:
    key_type, value_type = get_args(t) or (Any, Any)
    key, value = converter.get_structure_hook(key_type), converter.get_structure_hook(value_type)
    return lambda data, _: immutables.Map(
        {key(k, key_type): value(v, value_type) for k, v in data.items()}
    )


converter.register_unstructure_hook_factory(_is_persistent_map, _unstructure_persistent_map)
converter.register_structure_hook_factory(_is_persistent_map, _structure_persistent_map)
converter.register_unstructure_hook(datetime, datetime.isoformat)
converter.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
converter.register_unstructure_hook(date, date.isoformat)
converter.register_structure_hook(date, lambda v, _: date.fromisoformat(v))

_ENVELOPE = ("originator_id", "originator_version")

#: the last datetime formatted and its text: one command's events share their
#: timestamp, so each save formats it once (a tuple swapped whole: thread-safe)
_last_iso: list[tuple[datetime | None, str]] = [(None, "")]


def _iso(value: datetime) -> str:
    last = _last_iso[0]
    if last[0] is value:
        return last[1]
    text = value.isoformat()
    _last_iso[0] = (value, text)
    return text


Encoder = Callable[[Any], dict[str, Any]]


def _field_expression(tp: Any, value: str, hooks: dict[str, Any]) -> str:
    """Python source giving the same plain data as the cattrs hook for ``tp``.

    orjson then writes it exactly as it writes what cattrs gives: str
    subclasses (``PublicId``) as strings, ints, bools, None, tuples as arrays.
    Types with their own hooks (``LicenseKey``, ``Credentials``, filters) call
    the cattrs hook.
    """
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            inner = _field_expression(rest[0], value, hooks)
            return value if inner == value else f"(None if {value} is None else {inner})"
    if tp is datetime:
        hooks["_iso"] = _iso
        return f"_iso({value})"
    if tp is date:
        return f"{value}.isoformat()"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return f"{value}._value_"
    if isinstance(tp, type) and issubclass(tp, uuid.UUID):
        return f"str({value})"
    if tp in (str, int, bool, PublicId):
        return value
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        inner = _field_expression(args[0], "x", hooks)
        return value if inner == "x" else f"[{inner} for x in {value}]"
    name = f"_h{len(hooks)}"
    hooks[name] = converter.get_unstructure_hook(tp)
    return f"{name}({value})"


def _fast_encoder(cls: type[Any], version: int | None) -> Encoder:
    """A generated ``event -> dict`` for one event class, without the envelope
    (or ``state -> dict`` for an aggregate's state, with no ``version``).

    It gives the same keys in the same order as the cattrs path (attrs field
    order, ``_v`` last), so orjson writes the same bytes (property tests check
    every registered event class and every aggregate's state).
    """
    hints = typing.get_type_hints(cls)
    hooks: dict[str, Any] = {}
    items = [
        f"{f.name!r}: {_field_expression(hints[f.name], 'e.' + f.name, hooks)}"
        for f in attrs.fields(cls)
        if version is None or f.name not in _ENVELOPE
    ]
    if version is not None:
        items.append(f"'_v': {version!r}")
    source = "def encode(e):\n    return {" + ", ".join(items) + "}\n"
    namespace: dict[str, Any] = dict(hooks)
    exec(compile(source, f"<esmc encoder {cls.__name__}>", "exec"), namespace)
    encode: Encoder = namespace["encode"]
    return encode


def slow_encode_state(domain_event: Any) -> tuple[str, bytes]:
    """The reference encoding through cattrs (the fast path must equal it)."""
    registration = CLASSES[type(domain_event)]
    data = converter.unstructure(domain_event, type(domain_event))
    del data["originator_id"], data["originator_version"]
    data["_v"] = registration.version
    return registration.topic, orjson.dumps(data)


class _Encoders(dict[type[Any], tuple[str, Encoder]]):
    """(topic, encoder) by event class, each generated on its first use: a
    process that writes a few kinds of events (a command line run) does not pay
    for generating all of them when it starts."""

    def __missing__(self, cls: type[Any]) -> tuple[str, Encoder]:
        registration = CLASSES[cls]
        made = self[cls] = (registration.topic, _fast_encoder(cls, registration.version))
        return made


ENCODERS: dict[type[Any], tuple[str, Encoder]] = _Encoders()

Decoder = Callable[[dict[str, Any]], Any]


def _typed_id(cls: type[uuid.UUID]) -> Callable[[object], uuid.UUID]:
    """``value -> cls`` for an id field: stored text, or the envelope's UUID."""
    if issubclass(cls, _Id):
        id_type: Any = cls

        def typed(value: object) -> uuid.UUID:
            if type(value) is cls:
                return value
            if isinstance(value, uuid.UUID):
                return cls(value)  # an _Id takes a UUID without reparsing text
            return _parsed(id_type, str(value))

        return typed
    return lambda value: _to_uuid(value, cls)


def _structure_expression(tp: Any, value: str, hooks: dict[str, Any]) -> str:
    """Python source giving what ``converter.structure(value, tp)`` gives.

    The inverse of :func:`_field_expression`: plain JSON data in, the field's
    type out. Types with their own hooks call the cattrs hook, so a hook
    registered for them (``LicenseKey``, ``Credentials``, filters) is the one
    used.
    """
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            inner = _structure_expression(rest[0], value, hooks)
            return f"(None if {value} is None else {inner})"
    if tp is datetime:
        hooks["_dt"] = datetime.fromisoformat
        return f"_dt({value})"
    if tp is date:
        hooks["_date"] = date.fromisoformat
        return f"_date({value})"
    if isinstance(tp, type) and issubclass(tp, uuid.UUID):
        name = f"_h{len(hooks)}"
        hooks[name] = _typed_id(tp)
        return f"{name}({value})"
    if tp is PublicId:
        hooks["_pid"] = _public_id
        return f"_pid({value})"
    if tp in (str, int, bool):
        # cattrs calls the type: a value already of it passes untouched
        return f"({value} if type({value}) is {tp.__name__} else {tp.__name__}({value}))"
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        inner = _structure_expression(args[0], "x", hooks)
        return f"tuple([{inner} for x in {value}])"
    name = f"_h{len(hooks)}"
    hooks[name] = converter.get_structure_hook(tp)
    hooks[f"{name}t"] = tp
    return f"{name}({value}, {name}t)"


def _fast_decoder(cls: type[Any]) -> Decoder:
    """A generated ``dict -> event`` for one event class (envelope included).

    It gives what ``converter.structure(data, cls)`` gives (a property test
    checks every registered class): cattrs dispatches on each field's type at
    each call, this decides once per class.
    """
    hints = typing.get_type_hints(cls)
    hooks: dict[str, Any] = {"cls": cls}
    items = []
    for f in attrs.fields(cls):
        if not f.init:
            continue
        expression = _structure_expression(hints[f.name], f"d[{f.name!r}]", hooks)
        if f.default is not attrs.NOTHING:
            name = f"_default{len(hooks)}"
            if isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
                hooks[name] = f.default.factory
                fallback = f"{name}()"
            else:
                hooks[name] = f.default
                fallback = name
            expression = f"({expression} if {f.name!r} in d else {fallback})"
        items.append(f"{f.alias}={expression}")
    source = "def decode(d):\n    return cls(" + ", ".join(items) + ")\n"
    namespace: dict[str, Any] = dict(hooks)
    exec(compile(source, f"<esmc decoder {cls.__name__}>", "exec"), namespace)
    decode: Decoder = namespace["decode"]
    return decode


#: made on first use, after every structure hook is registered
_DECODERS: dict[type[Any], Decoder] = {}
_STATE_ENCODERS: dict[type[Any], Encoder] = {}


def decoder(cls: type[Any]) -> Decoder:
    """``dict -> instance`` of an event class or an aggregate's state class: what
    ``converter.structure(data, cls)`` gives, decided once per class."""
    found = _DECODERS.get(cls)
    if found is None:
        found = _DECODERS[cls] = _fast_decoder(cls)
    return found


def state_encoder(cls: type[Any]) -> Encoder:
    """``state -> dict`` of an aggregate's state class (snapshots, view rows):
    what ``converter.unstructure(state, cls)`` gives, decided once per class
    (cattrs dispatches on each field's type at each call; a view row or a
    snapshot of a computer was written about twice as fast this way)."""
    found = _STATE_ENCODERS.get(cls)
    if found is None:
        found = _STATE_ENCODERS[cls] = _fast_encoder(cls, None)
    return found


#: the secret fields (R32) of each event class seen so far, None for none:
#: found on first use (reading the type hints of every event class at import
#: cost each process start about 10 ms)
_SECRETS: dict[type[Any], tuple[tuple[str, ...], ...] | None] = {}
_UNSEEN: Any = object()


def secrets_of(cls: type[Any]) -> tuple[tuple[str, ...], ...] | None:
    """The secret fields (R32) of an event class, as paths; None when it has none."""
    paths = _SECRETS.get(cls, _UNSEEN)
    if paths is _UNSEEN:
        paths = _SECRETS[cls] = secret_paths(cls) or None
    return paths  # type: ignore[no-any-return]


def secrets_of_topic(topic: str) -> tuple[tuple[str, ...], ...] | None:
    """The secret fields (R32) of the events stored under ``topic``; None when
    they have none or the topic is not an event's."""
    registration = TOPICS.get(topic)
    return None if registration is None else secrets_of(registration.cls)


def event_context(topic: str, originator_id: uuid.UUID, originator_version: int) -> str:
    """Where a sealed field of an event belongs (its associated data, R32)."""
    return f"event|{topic}|{originator_id.hex}|{originator_version}"


class _NoTranscoder(Transcoder):
    """The mapper does its own encoding; eventsourcing insists on a transcoder."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


@functools.lru_cache(maxsize=1 << 12)
def _uuid(text: str) -> uuid.UUID:
    """Aggregate ids by their stored text: a log names the same aggregates many times."""
    return _from_text(uuid.UUID, text)


class EventMapper(Mapper[uuid.UUID]):
    """eventsourcing ``Mapper`` for the library's attrs events."""

    def __init__(
        self,
        transcoder: Transcoder | None = None,
        compressor: Compressor | None = None,
        cipher: Cipher | None = None,
        secrets: FieldCipher | None = None,
    ) -> None:
        super().__init__(transcoder or _NoTranscoder(), compressor=compressor, cipher=cipher)
        self._encoders = ENCODERS
        #: the data keys sealing secret fields (R32); None: none configured
        self.secrets = secrets

    def _data(self, domain_event: Any) -> tuple[str, dict[str, Any]]:
        topic, encode = self._encoders[type(domain_event)]
        data = encode(domain_event)
        paths = secrets_of(type(domain_event))
        if paths is not None:
            where = event_context(
                topic, domain_event.originator_id, domain_event.originator_version
            )
            seal_fields(self.secrets, data, paths, where)
        return topic, data

    def encode_state(self, domain_event: DomainEvent) -> tuple[str, bytes]:
        topic, data = self._data(domain_event)
        return topic, orjson.dumps(data)

    def to_row(self, domain_event: Any) -> tuple[str, bytes]:
        """(topic, stored state) of an event: what a recorder writes beside its ids."""
        topic, data = self._data(domain_event)
        state = orjson.dumps(data)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return topic, state

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        topic, state = self.to_row(domain_event)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=topic,
            state=state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        registration = TOPICS.get(stored_event.topic)
        if registration is None:
            raise MapperDeserialisationError(
                f"stored event {stored_event.originator_id}#{stored_event.originator_version} "
                f"has topic {stored_event.topic!r}, which this version of esmc-licensing "
                "does not know (was it written by a newer version?)"
            )
        state = stored_event.state
        try:
            if self.cipher:
                state = self.cipher.decrypt(state)
            if self.compressor:
                state = self.compressor.decompress(state)
            data: dict[str, Any] = orjson.loads(state)
        except Exception as e:
            raise MapperDeserialisationError(
                f"cannot read stored event {stored_event.originator_id}"
                f"#{stored_event.originator_version} ({stored_event.topic}): {e}"
            ) from e
        return self.decode_state(
            registration.topic,
            data,
            stored_event.originator_id,
            stored_event.originator_version,
        )

    def decode_state(
        self, topic: str, data: dict[str, Any], originator_id: object, originator_version: int
    ) -> DomainEvent:
        registration = TOPICS[topic]
        version = data.pop("_v", 1)
        while version < registration.version:
            data = registration.upcasters[version](data)
            version += 1
        data["originator_id"] = (
            originator_id if isinstance(originator_id, uuid.UUID) else _uuid(str(originator_id))
        )
        data["originator_version"] = originator_version
        paths = secrets_of_topic(topic)
        if paths is not None:
            where = event_context(topic, data["originator_id"], originator_version)
            open_fields(self.secrets, data, paths, where)
        try:
            event: DomainEvent = (_DECODERS.get(registration.cls) or decoder(registration.cls))(
                data
            )
            return event
        except Exception as e:
            raise MapperDeserialisationError(
                f"cannot rebuild {topic} {originator_id}#{originator_version}: {e}"
            ) from e
