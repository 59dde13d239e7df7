"""Secrets at rest (R32): license keys and passwords encrypted field by field.

Why field by field rather than the whole stored event (eventsourcing's
``CIPHER_KEY``): every other fact stays readable by the views, the history
and an auditor without the key, and forgetting a key ("crypto-shredding")
removes exactly the secrets it protected.

A sealed field is stored as ``{"kid": <data key id>, "ct": <base64 of nonce
and AES-256-GCM ciphertext>}`` in place of the plain text. The associated
data binds it to where it was written (the event's topic, aggregate id and
version and the field's path, or the snapshot's state class and aggregate
id), so a ciphertext copied into another event or field does not decrypt.
Plain text found where a sealed field is expected is read as it is: stores
written before encryption keep opening (their old rows stay in the log:
history is not rewritten; ``esmc-licensing migrate-secrets`` re-states the
current secrets encrypted).

The data key comes from ``ESMC_DATA_KEY`` (base64 of 32 bytes; several keys
separated by commas, oldest first, the last one current) or from
``ESMC_DATA_KEY_FILE`` (a key file of :mod:`esmc_licensing.keyring`, mode
0600), never from the store.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..domain.credentials import Credentials, UnavailableCredentials
from ..domain.errors import DataKeyMissing
from ..domain.ids import LicenseKey, UnavailableLicenseKey
from ..keyring import (
    KEY_BYTES,
    Keyring,
    KeyringError,
    from_setting,
    generate_key,
    key_id,
    read_key_file,
)

log = logging.getLogger("esmc_licensing.secrets")

DATA_KEY_VARIABLE = "ESMC_DATA_KEY"
DATA_KEY_FILE_VARIABLE = "ESMC_DATA_KEY_FILE"
PURPOSE = "data"
_NONCE = 12

#: a path to a secret inside an unstructured event or state, and how to mark it lost
SecretPath = tuple[str, ...]

_MISSING = (
    "no data key is configured, so a license key or password cannot be recorded "
    f"(R32: secrets are stored encrypted): set {DATA_KEY_FILE_VARIABLE} to a key file "
    f"(mode 0600; `esmc-licensing rotate-data-key` creates one) or {DATA_KEY_VARIABLE} "
    "to a base64 key of 32 bytes"
)


class FieldCipher:
    """Seals and opens secret fields with a data keyring (AES-256-GCM)."""

    def __init__(self, ring: Keyring) -> None:
        for kid, key in ring:
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"data key {kid} is {len(key)} bytes; data keys are {KEY_BYTES} bytes "
                    "(base64 of 32 random bytes)"
                )
        self.ring = ring
        self._ciphers: dict[str, Any] | None = None

    @property
    def _aead(self) -> dict[str, Any]:
        """AES-GCM per key id, made on first use: a command that touches no
        secret never imports the crypto library (cold start)."""
        ciphers = self._ciphers
        if ciphers is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            ciphers = self._ciphers = {kid: AESGCM(key) for kid, key in self.ring}
        return ciphers

    def __repr__(self) -> str:
        return f"FieldCipher({self.ring!r})"

    @property
    def current_id(self) -> str:
        return self.ring.current_id

    def seal(self, plain: str, context: bytes) -> dict[str, str]:
        nonce = os.urandom(_NONCE)
        sealed = self._aead[self.ring.current_id].encrypt(nonce, plain.encode(), context)
        return {"kid": self.ring.current_id, "ct": base64.b64encode(nonce + sealed).decode()}

    def open(self, sealed: Mapping[str, Any], context: bytes) -> str | None:
        """The plain text, or None when its key is not held or it does not authenticate."""
        kid = str(sealed.get("kid"))
        aead = self._aead.get(kid)
        if aead is None:
            return None
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b64decode(str(sealed.get("ct")), validate=True)
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], context).decode()  # type: ignore[no-any-return]
        except (InvalidTag, binascii.Error, ValueError):
            log.warning("a secret sealed with data key %s does not authenticate here", kid)
            return None


def is_sealed(value: object) -> bool:
    return type(value) is dict and "kid" in value and "ct" in value


def sealed_key_id(value: object) -> str | None:
    return str(value["kid"]) if is_sealed(value) else None  # type: ignore[index]


# -- where the secrets are ---------------------------------------------------------------


def _secret_paths_of(cls: type) -> tuple[SecretPath, ...]:
    """The secret fields of an attrs class, found from its type hints (so a new
    event carrying a key or credentials is covered without a list kept by hand)."""
    hints = typing.get_type_hints(cls)
    paths: list[SecretPath] = []
    for f in attrs.fields(cls):
        tp = hints[f.name]
        args = typing.get_args(tp) or (tp,)
        if LicenseKey in args:
            paths.append((f.name,))
        elif Credentials in args:
            paths.append((f.name, "password"))
    return tuple(paths)


_PATHS: dict[type, tuple[SecretPath, ...]] = {}


def secret_paths(cls: type) -> tuple[SecretPath, ...]:
    paths = _PATHS.get(cls)
    if paths is None:
        paths = _PATHS[cls] = _secret_paths_of(cls)
    return paths


def _context(where: str, path: SecretPath) -> bytes:
    return f"esmc-licensing/secret/v1|{where}|{'.'.join(path)}".encode()


def _holder(data: dict[str, Any], path: SecretPath) -> dict[str, Any] | None:
    """The dict holding a secret field's value (None when a step is absent)."""
    holder: dict[str, Any] | None = data
    for name in path[:-1]:
        holder = holder.get(name) if holder is not None else None
    return holder


def seal_fields(
    cipher: FieldCipher | None, data: dict[str, Any], paths: tuple[SecretPath, ...], where: str
) -> None:
    """Replace each plain secret of ``data`` (unstructured) with its sealed form.

    Raises ``DataKeyMissing`` (nothing written yet) with no cipher.
    """
    for path in paths:
        holder = _holder(data, path)
        if holder is None:
            continue
        value = holder.get(path[-1])
        if value is None or type(value) is dict:
            continue  # absent, or already sealed / an unavailable marker
        if cipher is None:
            raise DataKeyMissing(_MISSING)
        holder[path[-1]] = cipher.seal(value, _context(where, path))


def open_fields(
    cipher: FieldCipher | None, data: dict[str, Any], paths: tuple[SecretPath, ...], where: str
) -> None:
    """Replace each sealed secret of ``data`` with its plain text, or with an
    "unavailable" marker when its key is not held (crypto-shredding); the
    structure hooks turn the marker into the domain's unavailable value."""
    for path in paths:
        holder = _holder(data, path)
        if holder is None:
            continue
        value = holder.get(path[-1])
        if not is_sealed(value):
            continue  # plain text from before R32, a marker, or absent
        assert isinstance(value, dict)
        plain = None if cipher is None else cipher.open(value, _context(where, path))
        holder[path[-1]] = lost(value["kid"]) if plain is None else plain


def lost(kid: object) -> dict[str, Any]:
    """What stands for a secret whose key is not held (kept as such in snapshots)."""
    return {"kid": str(kid), "unavailable": True}


def license_key_data(key: LicenseKey) -> Any:
    if isinstance(key, UnavailableLicenseKey):
        return lost(key.key_id)
    return key.reveal()


def license_key_from_data(value: object) -> LicenseKey:
    if isinstance(value, LicenseKey):
        return value
    if isinstance(value, dict):
        return UnavailableLicenseKey(value.get("kid"))
    return LicenseKey(value)


def credentials_data(credentials: Credentials) -> dict[str, Any]:
    if isinstance(credentials, UnavailableCredentials):
        return {"username": credentials.username, "password": lost(credentials.key_id)}
    return {"username": credentials.username, "password": credentials.reveal_password()}


def credentials_from_data(data: Mapping[str, Any]) -> Credentials:
    password = data["password"]
    if isinstance(password, dict):
        return UnavailableCredentials(data["username"], password.get("kid"))
    return Credentials(data["username"], password)


# -- the configured keys ----------------------------------------------------------------

#: the key in-memory stores use when none is configured: one per process, so
#: in-memory applications sharing a recorder read each other's secrets
_process_key: list[bytes] = []


def process_keyring() -> Keyring:
    if not _process_key:
        _process_key.append(generate_key())
    return Keyring.of(PURPOSE, _process_key[0])


def data_key_file(path: str | Path) -> str:
    """``path``, after creating a data key file there (0600, one new key) if none
    exists: the value for ``ESMC_DATA_KEY_FILE`` of an embedding application
    that keeps its key beside its store (back it up apart from the store)."""
    from ..keyring import create_key_file

    where = Path(path).expanduser()
    if not where.exists():
        create_key_file(where, PURPOSE)
    else:
        read_key_file(where, PURPOSE)
    return str(where)


def cipher_for(settings: Mapping[str, Any]) -> FieldCipher | None:
    """The field cipher an application or log reader over ``settings`` uses; an
    in-memory store without a configured key uses a key made for this process
    (nothing it holds outlives the process anyway)."""
    ring = data_keyring(settings)
    module = str(settings.get("PERSISTENCE_MODULE") or "eventsourcing.popo")
    name = str(settings.get("SQLITE_DBNAME") or "")
    in_memory = module.endswith("popo") or (
        module.endswith("sqlite") and (":memory:" in name or "mode=memory" in name)
    )
    if ring is None and in_memory:
        ring = process_keyring()
    return None if ring is None else FieldCipher(ring)


def data_keyring(settings: Mapping[str, Any]) -> Keyring | None:
    """The data keyring the settings name, or None when none is configured."""
    value = settings.get(DATA_KEY_VARIABLE)
    path = settings.get(DATA_KEY_FILE_VARIABLE)
    if value and path:
        raise KeyringError(
            f"both {DATA_KEY_VARIABLE} and {DATA_KEY_FILE_VARIABLE} are set; keep one"
        )
    if value:
        return from_setting(PURPOSE, str(value), variable=DATA_KEY_VARIABLE)
    if path:
        return read_key_file(Path(str(path)).expanduser(), PURPOSE)
    return None


__all__ = [
    "DATA_KEY_FILE_VARIABLE",
    "DATA_KEY_VARIABLE",
    "FieldCipher",
    "cipher_for",
    "credentials_data",
    "credentials_from_data",
    "data_key_file",
    "data_keyring",
    "is_sealed",
    "key_id",
    "license_key_data",
    "license_key_from_data",
    "lost",
    "open_fields",
    "process_keyring",
    "seal_fields",
    "sealed_key_id",
    "secret_paths",
]
