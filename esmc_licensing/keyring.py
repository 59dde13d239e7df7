"""Named secret keys with ids: one definition for the seal keys and the data keys.

Why ids: a seal or a ciphertext names the key it was made with, so a wrong
key is reported as "wrong key (id …)" instead of as damage, and a rotation
keeps everything made with an older key readable while new work uses the
newest one. Forgetting an id ("crypto-shredding") makes what it protected
unreadable and leaves everything else alone.

Keys come from an environment variable (one key) or a key file that only its
owner may read (mode 0600 or 0400), never from the store they protect and
never from the command line. A key file is JSON::

    {"version": 1, "current": "<id>", "keys": [{"id": "<id>", "key": "<base64>"}]}

The repr of a keyring shows ids only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs

from .domain.errors import InvalidInput

#: bytes in a key this library generates (AES-256-GCM, HMAC-SHA256)
KEY_BYTES = 32
_FILE_VERSION = 1


class KeyringError(InvalidInput):
    """A key setting or key file that cannot be used as it is."""


class UnknownKey(KeyringError):
    """Something was made with a key whose id this keyring does not hold."""


def key_id(key: bytes) -> str:
    """A short public name for ``key``: reveals nothing usable about it."""
    return hmac.new(key, b"esmc-licensing key id", hashlib.sha256).hexdigest()[:12]


def generate_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


@attrs.frozen(repr=False)
class Keyring:
    """Keys by id, oldest first; the last one is current (used for new work)."""

    purpose: str
    entries: tuple[tuple[str, bytes], ...]

    def __attrs_post_init__(self) -> None:
        if not self.entries:
            raise KeyringError(f"a {self.purpose} keyring needs at least one key")
        ids = [key_id_ for key_id_, _ in self.entries]
        if len(set(ids)) != len(ids):
            raise KeyringError(f"the {self.purpose} keyring names a key twice")

    def __repr__(self) -> str:
        return f"Keyring({self.purpose!r}, ids={self.ids!r}, current={self.current_id!r})"

    @classmethod
    def of(cls, purpose: str, *keys: bytes) -> Keyring:
        return cls(purpose, tuple((key_id(key), key) for key in keys))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key_id_ for key_id_, _ in self.entries)

    @property
    def current_id(self) -> str:
        return self.entries[-1][0]

    @property
    def current(self) -> bytes:
        return self.entries[-1][1]

    def __contains__(self, key_id_: object) -> bool:
        return any(key_id_ == known for known, _ in self.entries)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return iter(self.entries)

    def key(self, key_id_: str) -> bytes:
        for known, key in self.entries:
            if known == key_id_:
                return key
        raise UnknownKey(
            f"no {self.purpose} key with id {key_id_} is configured "
            f"(configured: {', '.join(self.ids)})"
        )

    def rotated(self, new_key: bytes | None = None) -> Keyring:
        """The same keys plus a new current one; older ids stay readable."""
        key = generate_key() if new_key is None else new_key
        return Keyring(self.purpose, (*self.entries, (key_id(key), key)))

    def without(self, key_id_: str) -> Keyring:
        """The keyring with ``key_id_`` forgotten (it must not be the only key)."""
        self.key(key_id_)
        return Keyring(self.purpose, tuple(e for e in self.entries if e[0] != key_id_))


def from_setting(
    purpose: str, value: str, *, variable: str, passphrase: bool = False
) -> Keyring:
    """Keys from an environment setting: base64 of 32 bytes each, separated by
    commas, oldest first (the last is current).

    With ``passphrase`` (seal keys), a value that is not such a list is one key,
    its UTF-8 bytes, so seal keys set as passphrases by earlier versions keep
    verifying the seals made with them.
    """
    if not value.strip():
        raise KeyringError(f"{variable} is set but empty; unset it or give it a key")
    keys = []
    for part in value.split(","):
        try:
            raw = base64.b64decode(part.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            if passphrase:
                return Keyring.of(purpose, value.encode())
            raise KeyringError(
                f"{variable} must be base64 keys of 32 bytes separated by commas "
                '(make one with: python -c "import base64,os;'
                'print(base64.b64encode(os.urandom(32)).decode())")'
            )
        keys.append(raw)
    return Keyring.of(purpose, *keys)


def _check_private(path: Path, purpose: str) -> None:
    try:
        info = path.stat()
    except OSError as error:
        raise KeyringError(f"cannot read the {purpose} key file {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyringError(f"the {purpose} key file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise KeyringError(
            f"the {purpose} key file {path} is readable by others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise KeyringError(f"the {purpose} key file {path} belongs to another user")


def read_key_file(path: Path, purpose: str) -> Keyring:
    """Read a key file, refusing it unless only its owner can read it.

    The file is this library's JSON (key ids, several keys after a rotation) or,
    as api.md allows, just the key's base64 text as ``keygen`` prints it
    (several separated by commas, the last current).
    """
    _check_private(path, purpose)
    problem = f"the {purpose} key file {path} is not a key file of this library"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise KeyringError(problem) from None
    if not text.lstrip().startswith("{"):
        return from_setting(purpose, text.strip(), variable=f"the {purpose} key file {path}")
    try:
        data = json.loads(text)
    except ValueError:
        raise KeyringError(problem) from None
    if not isinstance(data, Mapping) or data.get("version") != _FILE_VERSION:
        raise KeyringError(problem)
    entries: list[tuple[str, bytes]] = []
    for item in data.get("keys") or ():
        try:
            key = base64.b64decode(item["key"], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise KeyringError(problem) from None
        if not key or item.get("id") != key_id(key):
            raise KeyringError(f"{problem}: a key does not match its id")
        entries.append((key_id(key), key))
    current = data.get("current")
    ids = [key_id_ for key_id_, _ in entries]
    if current not in ids:
        raise KeyringError(f"{problem}: its current key id is not among its keys")
    entries.append(entries.pop(ids.index(current)))
    return Keyring(purpose, tuple(entries))


def write_key_file(path: Path, ring: Keyring) -> None:
    """Write ``ring`` to ``path`` atomically; the file is created mode 0600."""
    text = json.dumps(
        {
            "version": _FILE_VERSION,
            "current": ring.current_id,
            "keys": [
                {"id": key_id_, "key": base64.b64encode(key).decode()}
                for key_id_, key in ring.entries
            ],
        },
        indent=2,
    )
    directory = path.parent if str(path.parent) else Path(".")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def create_private_file(path: str | Path) -> bool:
    """Create ``path`` empty and readable by its owner only (0600), unless it exists.

    Why: SQLite creates a database with the process umask (usually 0644), and
    its WAL and shared-memory files copy the database's mode; creating the file
    first makes the store and its companions private from the start (R32).
    Returns whether it was created. Errors (no such directory, read-only) are
    left for the caller's open to report.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(descriptor)
    return True


def create_key_file(path: Path, purpose: str) -> Keyring:
    """A new key file holding one generated key; refuses to overwrite a file."""
    if path.exists():
        raise KeyringError(f"the {purpose} key file {path} already exists")
    ring = Keyring.of(purpose, generate_key())
    write_key_file(path, ring)
    return ring


def rotate_key_file(path: Path, purpose: str) -> tuple[Keyring, bool]:
    """Add a new current key to the key file at ``path``, creating the file
    (mode 0600, one key) when there is none; returns the keyring and whether
    the file was created. Older keys stay, to read what they made."""
    if not path.exists():
        return create_key_file(path, purpose), True
    ring = read_key_file(path, purpose).rotated()
    write_key_file(path, ring)
    return ring, False
