"""Named keys (R31 seal keys, R32 data keys): ids, rotation, private key files."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from esmc_licensing.keyring import (
    Keyring,
    KeyringError,
    UnknownKey,
    create_key_file,
    from_setting,
    key_id,
    read_key_file,
    write_key_file,
)


def test_r31_a_key_file_round_trips_and_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "seal.key"
    ring = create_key_file(path, "seal")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_key_file(path, "seal") == ring
    rotated = ring.rotated()
    write_key_file(path, rotated)
    again = read_key_file(path, "seal")
    assert again.current_id == rotated.current_id != ring.current_id
    assert again.key(ring.current_id) == ring.current


def test_r31_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "seal.key"
    create_key_file(path, "seal")
    path.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        read_key_file(path, "seal")


def test_r31_an_unknown_key_id_is_named_and_no_key_appears_in_reprs() -> None:
    key = b"k" * 32
    ring = Keyring.of("data", key)
    assert key.decode() not in repr(ring)
    assert base64.b64encode(key).decode() not in repr(ring)
    with pytest.raises(UnknownKey, match="no data key with id 000000000000"):
        ring.key("000000000000")
    assert ring.key(key_id(key)) == key


def test_r31_a_setting_is_a_base64_key_or_a_passphrase() -> None:
    key = bytes(range(32))
    assert from_setting("seal", base64.b64encode(key).decode(), variable="X").current == key
    assert (
        from_setting("seal", "correct horse", variable="X", passphrase=True).current
        == b"correct horse"
    )
    with pytest.raises(KeyringError, match="X is set but empty"):
        from_setting("seal", "", variable="X")
    # data keys: only base64 keys, several separated by commas, the last current (R32)
    with pytest.raises(KeyringError, match="base64 keys of 32 bytes"):
        from_setting("data", "correct horse", variable="X")
    other = bytes(range(1, 33))
    both = f"{base64.b64encode(key).decode()},{base64.b64encode(other).decode()}"
    ring = from_setting("data", both, variable="X")
    assert ring.current == other and ring.key(key_id(key)) == key


def test_r32_forgetting_a_key_keeps_the_others() -> None:
    ring = Keyring.of("data", b"a" * 32).rotated(b"b" * 32)
    left = ring.without(key_id(b"a" * 32))
    assert left.ids == (key_id(b"b" * 32),)
    with pytest.raises(KeyringError):
        left.without(key_id(b"b" * 32))


def test_r32_a_key_file_may_hold_just_the_keys_base64_text(tmp_path: Path) -> None:
    """api.md: a key file holds the same text as the setting (``keygen > FILE``)."""
    old, new = os.urandom(32), os.urandom(32)
    path = tmp_path / "data.key"
    path.write_text(f"{base64.b64encode(old).decode()}, {base64.b64encode(new).decode()}\n")
    path.chmod(0o600)
    ring = read_key_file(path, "data")
    assert ring.current == new and ring.key(key_id(old)) == old
    path.write_text("not a key\n")
    with pytest.raises(KeyringError, match="must be base64 keys of 32 bytes") as caught:
        read_key_file(path, "data")
    assert "not a key" not in str(caught.value)
