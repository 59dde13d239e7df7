"""Identifiers: Public IDs, license keys and aggregate ids.

Aggregate ids are UUID5s of natural keys where one exists, so that "add the
same license twice" meets the event store's uniqueness check instead of a
check-then-act race in Python.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from typing import ClassVar, Final, Self

from .errors import InvalidLicenseKey, InvalidPublicId

NAMESPACE: Final = uuid.UUID("6f1d7a52-3c0e-4f59-9a8e-2b1a6c4d9e10")

_PUBLIC_ID = re.compile(r"[0-9A-Z]{3}-[0-9A-Z]{3}-[0-9A-Z]{3}")
_LICENSE_KEY = re.compile(r"[0-9A-Z]{4}(?:-[0-9A-Z]{4}){4}")


class PublicId(str):
    """A license's Public ID (R1): three groups of three letters or digits.

    A ``str`` subclass so that every API taking a Public ID also takes its
    canonical string; construction validates and upper-cases.
    """

    __slots__ = ()

    def __new__(cls, value: object) -> PublicId:
        if isinstance(value, PublicId):
            return value
        if not isinstance(value, str):
            raise InvalidPublicId(
                f"a Public ID must be text like 3AB-C12-D34, not {type(value).__name__}"
            )
        text = value.strip().upper()
        if not _PUBLIC_ID.fullmatch(text):
            shown = text if len(text) <= 20 else text[:20] + "…"
            raise InvalidPublicId(
                f"{shown!r} is not a Public ID: expected three groups of three letters "
                "or digits separated by dashes, like 3AB-C12-D34"
            )
        return super().__new__(cls, text)

    def __repr__(self) -> str:
        return f"PublicId({str.__repr__(self)})"


class LicenseKey:
    """A license key (R2): a secret that activates products.

    Its ``str`` and ``repr`` show only the last four characters; the full value
    is available only through :meth:`reveal`, which the activation server
    adapter and the installer configuration call.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: object) -> None:
        if isinstance(value, LicenseKey):
            object.__setattr__(self, "_value", value._value)
            return
        if not isinstance(value, str):
            raise InvalidLicenseKey("a license key must be text of 20 letters or digits")
        text = value.strip().upper()
        if not _LICENSE_KEY.fullmatch(text):
            # Never echo the input: it may be a real key with a typo.
            raise InvalidLicenseKey(
                "that is not a license key: expected 20 letters or digits in five groups "
                "of four separated by dashes, like XXXX-XXXX-XXXX-XXXX-XXXX"
            )
        object.__setattr__(self, "_value", text)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("LicenseKey is immutable")

    @property
    def last4(self) -> str:
        return self._value[-4:]

    @property
    def masked(self) -> str:
        return "XXXX-XXXX-XXXX-XXXX-" + self.last4

    def reveal(self) -> str:
        """The full key, for the activation server and installer only."""
        return self._value

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"LicenseKey({self.masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LicenseKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("LicenseKey", self._value))

    def __reduce__(self) -> tuple[type[LicenseKey], tuple[str]]:
        return (LicenseKey, (self._value,))


class UnavailableLicenseKey(LicenseKey):
    """A license key recorded with a data key that is not configured (R32).

    What a forgotten ("crypto-shredded") or missing data key leaves of a key:
    the license stays, its key cannot be revealed. ``key_id`` names the data
    key it was encrypted with, so an operator knows which key would bring it
    back.
    """

    __slots__ = ("key_id",)
    key_id: str

    def __init__(self, key_id: object) -> None:
        object.__setattr__(self, "_value", "")
        object.__setattr__(self, "key_id", str(key_id))

    @property
    def last4(self) -> str:
        return ""

    @property
    def masked(self) -> str:
        return f"(unavailable: data key {self.key_id})"

    def reveal(self) -> str:
        from .errors import SecretUnavailable

        raise SecretUnavailable(
            f"this license key was recorded with data key {self.key_id}, which is not "
            "configured (forgotten or missing); add the key again or re-add the license"
        )

    def __repr__(self) -> str:
        return f"UnavailableLicenseKey({self.key_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnavailableLicenseKey) and other.key_id == self.key_id

    def __hash__(self) -> int:
        return hash(("UnavailableLicenseKey", self.key_id))

    def __reduce__(self) -> tuple[type[UnavailableLicenseKey], tuple[str]]:
        return (UnavailableLicenseKey, (self.key_id,))


#: the variant and version bits of a version-4 UUID (RFC 4122), as uuid.UUID sets them
_V4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_V4_SET = (0x8000 << 48) | (4 << 76)

#: random 128-bit values from the OS (os.urandom, as uuid4 uses), fetched 256 at
#: a time: one system call per 256 ids instead of one per id. ``list.pop`` is
#: atomic, so threads never share a value; a forked child starts empty.
_RANDOM_POOL: list[int] = []
os.register_at_fork(after_in_child=_RANDOM_POOL.clear)


def _random_128() -> int:
    try:
        return _RANDOM_POOL.pop()
    except IndexError:
        data = os.urandom(16 * 256)
        _RANDOM_POOL.extend(int.from_bytes(data[i : i + 16]) for i in range(0, len(data), 16))
        return _RANDOM_POOL.pop()


class _Id(uuid.UUID):
    """A typed aggregate id; ``str()`` gives the canonical form.

    The canonical form is computed once and kept (ids are immutable; ids are
    formatted for every event, audit target and seat). Pickling and copying
    keep only ``int``, as for ``uuid.UUID``; the form is then computed again.
    """

    __slots__ = ("_text",)
    _text: str
    #: what to call instead when a name was given where an id is expected
    _lookup_hint: ClassVar[str] = ""

    def __init__(self, value: object) -> None:
        if isinstance(value, uuid.UUID):
            super().__init__(int=value.int)
            return
        if not isinstance(value, str):
            from .errors import InvalidInput

            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
            raise InvalidInput(
                f"{shown} is not a {type(self).__name__}: expected a UUID like "
                "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
            )
        try:
            super().__init__(value.strip())
        except ValueError:
            from .errors import InvalidInput

            shown = value if len(value) <= 40 else value[:40] + "…"
            raise InvalidInput(
                f"{shown!r} is not a {type(self).__name__}: expected a UUID like "
                f"1b4e28ba-2fa1-11d2-883f-0016d3cca427{type(self)._lookup_hint}"
            ) from None

    def __str__(self) -> str:
        try:
            return self._text
        except AttributeError:
            text = uuid.UUID.__str__(self)
            object.__setattr__(self, "_text", text)
            return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self}')"

    @classmethod
    def random(cls) -> Self:
        """A new random (version 4) id, as ``cls(uuid.uuid4())`` gives, built once.

        ``uuid.uuid4()`` and then the typed id each run ``UUID.__init__``'s
        argument checks; every client task needs a fresh id.
        """
        value = (_random_128() & _V4_CLEAR) | _V4_SET
        new = cls.__new__(cls)
        object.__setattr__(new, "int", value)
        object.__setattr__(new, "is_safe", uuid.SafeUUID.unknown)
        return new

    @classmethod
    def derive(cls, natural_key: str) -> Self:
        return cls(uuid.uuid5(NAMESPACE, f"{cls.__name__}:{natural_key}"))


class PoolId(_Id):
    __slots__ = ()
    _lookup_hint = '; pools are listed by pools(actor), each with its pool_id'


class GroupId(_Id):
    __slots__ = ()
    _lookup_hint = '; to find a group by name use group_named(name), or groups(actor) for all'


class UserId(_Id):
    __slots__ = ()
    _lookup_hint = '; to find a user by name use user_named(name), or users(actor) for all'


class ComputerId(_Id):
    __slots__ = ()
    _lookup_hint = '; computers(actor) lists them with their computer_id'


class TaskId(_Id):
    __slots__ = ()
    _lookup_hint = '; the command that started a task returned its TaskId'


#: what a tag or a history is about: a pool, a license (its Public ID or that
#: text) or a computer
Target = PoolId | PublicId | ComputerId | str


class AggregateId(_Id):
    """The id of an aggregate without a typed id of its own (a license's),
    derived from its natural key; like every id here it keeps its text."""

    __slots__ = ()


@functools.lru_cache(maxsize=65536)
def license_aggregate_id(public_id: PublicId) -> uuid.UUID:
    return AggregateId(uuid.uuid5(NAMESPACE, f"license:{public_id}"))


@functools.lru_cache(maxsize=65536)
def pool_id_for(natural_key: str) -> PoolId:
    return PoolId(uuid.uuid5(NAMESPACE, f"pool:{natural_key}"))


DIRECTORY_ID: Final = uuid.uuid5(NAMESPACE, "directory")
TAGS_ID: Final = uuid.uuid5(NAMESPACE, "tags")
SEALS_ID: Final = uuid.uuid5(NAMESPACE, "seals")


def filters_aggregate_id(user: UserId) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"filters:{user}")
