"""R16 (and R9): offline license files, the ``ESMC-LF/1`` format.

Pure tests of the format, the vendor's signer and the verifier: no store, no
application. Every refusal must be an ``InvalidLicenseFile`` naming its check.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from esmc_licensing.adapters.memory import InMemoryActivationServer, ManualClock
from esmc_licensing.adapters.offline_file import (
    MAGIC,
    MAX_FILE_SIZE,
    Ed25519OfflineFileVerifier,
    OfflineLicense,
    key_id_of,
    load_public_key,
    sign_offline_file,
    sign_payload,
    verify_offline_file,
)
from esmc_licensing.adapters.ports import OfflineFileVerifier
from esmc_licensing.domain.errors import (
    InvalidInput,
    InvalidLicenseFile,
    LicensingError,
    NotFound,
)
from esmc_licensing.domain.values import LicenseDetails, LicenseType

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOKEN = "5f0c2a9e8b7d4c3a2f1e0d9c8b7a6f5e"
OTHER_TOKEN = "0123456789abcdef0123456789abcdef"
PID = "3AB-C12-D34"
SUB_PID = "9ZZ-Y88-X77"
PRODUCT = "ESET Endpoint Security"
CUSTOMER = "ACME Secret Corp"
CONTACT = "it-private@acme.example"

# Each check, by the words its message must use.
SIZE = "too large to be a license file"
NOT_A_FILE = "not an ESMC offline license file"
SIGNATURE = "signature"
MALFORMED = "license data is malformed"
TOKEN_CHECK = "generated for another console installation"
FUTURE = "issue time in the future"
EXPIRED = "already expired"
SUBSCRIPTION = "subscription"


@pytest.fixture(scope="module")
def vendor() -> InMemoryActivationServer:
    server = InMemoryActivationServer(ManualClock(NOW - timedelta(days=1)), seed="offline-tests")
    server.issue(
        public_id=PID,
        product=PRODUCT,
        units=25,
        license_type=LicenseType.BUSINESS,
        expires=date(2027, 1, 31),
        owner=CUSTOMER,
        contact=CONTACT,
        offline_units=5,
        subunits=2,
    )
    server.issue(public_id=SUB_PID, product=PRODUCT, units=10, subscription=True, owner=CUSTOMER)
    return server


@pytest.fixture(scope="module")
def good_file(vendor: InMemoryActivationServer) -> bytes:
    return vendor.offline_file(PID, TOKEN)


def verify(
    content: bytes,
    vendor: InMemoryActivationServer,
    *,
    token: str = TOKEN,
    now: datetime = NOW,
) -> OfflineLicense:
    return verify_offline_file(content, public_key=vendor.public_key, console_token=token, now=now)


def refused(content: bytes, vendor: InMemoryActivationServer, **kw: Any) -> str:
    with pytest.raises(InvalidLicenseFile) as info:
        verify(content, vendor, **kw)
    message = str(info.value)
    # Nothing from the file but the Public ID ever appears in a message.
    for secret in (TOKEN, OTHER_TOKEN, CUSTOMER, CONTACT):
        assert secret not in message
    return message


def vendor_key(vendor: InMemoryActivationServer) -> Ed25519PrivateKey:
    return vendor._signing_key()


def payload_of(content: bytes) -> dict[str, Any]:
    envelope = json.loads(content.split(b"\n", 1)[1])
    result: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return result


def _with_signature_bit_flipped(content: bytes) -> bytes:
    envelope = json.loads(content.split(b"\n", 1)[1])
    signature = bytearray(base64.b64decode(envelope["signature"]))
    signature[10] ^= 0x01
    envelope["signature"] = base64.b64encode(bytes(signature)).decode()
    body = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + b"\n" + body + b"\n"


def signed(vendor: InMemoryActivationServer, payload: dict[str, Any]) -> bytes:
    """A file with this payload, correctly signed by the vendor."""
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return sign_payload(vendor_key(vendor), raw)


# -- the happy path --------------------------------------------------------


def test_r16_valid_file_round_trips(vendor: InMemoryActivationServer, good_file: bytes) -> None:
    result = verify(good_file, vendor)
    expected = vendor.details_of(PID)
    assert result.public_id == PID
    assert result.details == LicenseDetails(
        public_id=PID,
        product=PRODUCT,
        units=25,
        license_type=LicenseType.BUSINESS,
        product_code=expected.product_code,
        offline_units=5,
        subunits=2,
        expires=date(2027, 1, 31),
        subscription=False,
        owner=CUSTOMER,
        contact=CONTACT,
    )
    assert result.issued_at == NOW - timedelta(days=1)
    assert result.issued_at.tzinfo is not None
    assert result.console_token == TOKEN


def test_r16_file_has_documented_shape(vendor: InMemoryActivationServer, good_file: bytes) -> None:
    magic, body = good_file.split(b"\n", 1)
    assert magic == MAGIC == b"ESMC-LF/1"
    assert body.endswith(b"\n") and body.count(b"\n") == 1
    envelope = json.loads(body)
    assert sorted(envelope) == ["key_id", "payload", "signature"]
    assert envelope["key_id"] == key_id_of(vendor.public_key)
    assert len(base64.b64decode(envelope["signature"])) == 64
    payload = payload_of(good_file)
    assert payload == {
        "public_id": PID,
        "license_type": "BUSINESS",
        "product": PRODUCT,
        "product_code": vendor.details_of(PID).product_code,
        "units": 25,
        "offline_units": 5,
        "subunits": 2,
        "expires": "2027-01-31",
        "customer": CUSTOMER,
        "contact": CONTACT,
        "issued_at": "2026-02-28T12:00:00Z",
        "console_token": TOKEN,
        "subscription": False,
    }


def test_r16_verifier_class_implements_the_port(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    verifier = Ed25519OfflineFileVerifier(vendor.public_key)
    assert isinstance(verifier, OfflineFileVerifier)
    assert verifier.verify(good_file, TOKEN, NOW) == verify(good_file, vendor)
    assert verifier.key_id in repr(verifier)


def test_r16_public_key_loads_from_raw_bytes_and_pem(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    raw = vendor.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = vendor.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for form in (raw, pem, pem.decode()):
        assert Ed25519OfflineFileVerifier(form).verify(good_file, TOKEN, NOW).public_id == PID
    assert key_id_of(load_public_key(raw)) == key_id_of(vendor.public_key)
    with pytest.raises(InvalidInput):
        load_public_key(b"not a key")


def test_r16_vendor_key_and_files_are_deterministic_per_seed() -> None:
    def make(seed: str) -> InMemoryActivationServer:
        server = InMemoryActivationServer(ManualClock(NOW), seed=seed)
        server.issue(public_id=PID, product=PRODUCT, units=3, expires=date(2027, 1, 1))
        return server

    a, b, c = make("s1"), make("s1"), make("s2")
    assert key_id_of(a.public_key) == key_id_of(b.public_key) != key_id_of(c.public_key)
    assert a.offline_file(PID, TOKEN) == b.offline_file(PID, TOKEN) != c.offline_file(PID, TOKEN)


def test_r16_expiring_today_is_still_accepted(vendor: InMemoryActivationServer) -> None:
    payload = payload_of(vendor.offline_file(PID, TOKEN))
    payload["expires"] = NOW.date().isoformat()
    assert verify(signed(vendor, payload), vendor).details.expires == NOW.date()


@pytest.mark.parametrize(
    ("text", "microsecond"),
    [("2026-02-28T12:00:00.5Z", 500000), ("2026-02-28T12:00:00.123456Z", 123456)],
)
def test_r16_fractional_issue_times_are_accepted(
    vendor: InMemoryActivationServer, text: str, microsecond: int
) -> None:
    payload = dict(payload_of(vendor.offline_file(PID, TOKEN)), issued_at=text)
    issued_at = verify(signed(vendor, payload), vendor).issued_at
    assert issued_at == datetime(2026, 2, 28, 12, 0, 0, microsecond, tzinfo=UTC)


def test_r16_issue_time_with_microseconds_round_trips(vendor: InMemoryActivationServer) -> None:
    moment = datetime(2026, 2, 28, 12, 0, 0, 7, tzinfo=UTC)
    content = sign_offline_file(vendor_key(vendor), vendor.details_of(PID), TOKEN, moment)
    assert verify(content, vendor).issued_at == moment


def test_r16_issued_exactly_now_is_accepted(vendor: InMemoryActivationServer) -> None:
    payload = payload_of(vendor.offline_file(PID, TOKEN))
    payload["issued_at"] = "2026-03-01T12:00:00Z"
    assert verify(signed(vendor, payload), vendor).issued_at == NOW


# -- tampering -------------------------------------------------------------


@pytest.mark.parametrize("first_mask", range(1, 256, 17), ids=lambda m: f"masks-{m:#04x}")
def test_r16_one_byte_flipped_at_every_position_is_refused(
    vendor: InMemoryActivationServer, good_file: bytes, first_mask: int
) -> None:
    """Exhaustive over the 15 groups: every position, every one of the 255 flips."""
    accepted = []
    for mask in range(first_mask, first_mask + 17):
        for position in range(len(good_file)):
            tampered = bytearray(good_file)
            tampered[position] ^= mask
            try:  # not pytest.raises: 37,000 of those would dominate the run time
                verify(bytes(tampered), vendor)
            except InvalidLicenseFile:
                continue
            accepted.append((position, mask))
    assert accepted == []


@given(data=st.data())
def test_r16_any_single_byte_replaced_is_refused(
    vendor: InMemoryActivationServer, good_file: bytes, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(good_file) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != good_file[position]), label="value")
    tampered = bytearray(good_file)
    tampered[position] = value
    with pytest.raises(InvalidLicenseFile):
        verify(bytes(tampered), vendor)


@given(data=st.data())
def test_r16_any_insertion_or_deletion_is_refused(
    vendor: InMemoryActivationServer, good_file: bytes, data: st.DataObject
) -> None:
    insert = data.draw(st.booleans(), label="insert")
    last = len(good_file) if insert else len(good_file) - 1
    position = data.draw(st.integers(0, last), label="position")
    if insert:
        extra = data.draw(st.binary(min_size=1, max_size=4), label="extra")
        tampered = good_file[:position] + extra + good_file[position:]
    else:
        tampered = good_file[:position] + good_file[position + 1 :]
    assert tampered != good_file
    with pytest.raises(InvalidLicenseFile):
        verify(tampered, vendor)


def test_r16_every_truncation_is_refused(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    for end in range(len(good_file)):
        with pytest.raises(InvalidLicenseFile):
            verify(good_file[:end], vendor)


def test_r16_reformatted_envelope_is_refused(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    envelope = json.loads(good_file.split(b"\n", 1)[1])
    variants = [
        MAGIC + b"\n" + json.dumps(envelope, indent=2).encode() + b"\n",
        MAGIC + b"\r\n" + good_file.split(b"\n", 1)[1],
        good_file.replace(b"\n", b"\r\n"),
        good_file + b"\n",
        good_file.rstrip(b"\n"),
        b" " + good_file,
    ]
    for variant in variants:
        assert NOT_A_FILE in refused(variant, vendor)


def test_r16_non_canonical_base64_is_refused(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    # The signature is 64 bytes: its base64 ends "xw==" where x carries 4 unused bits.
    envelope = json.loads(good_file.split(b"\n", 1)[1])
    sig = envelope["signature"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(sig[-3])
    envelope["signature"] = sig[:-3] + alphabet[last ^ 0x01] + "=="
    assert base64.b64decode(envelope["signature"]) == base64.b64decode(sig)
    body = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
    message = refused(MAGIC + b"\n" + body + b"\n", vendor)
    assert NOT_A_FILE in message and "canonical base64" in message


def test_r16_wrong_vendor_key_is_refused(good_file: bytes) -> None:
    impostor = InMemoryActivationServer(ManualClock(NOW), seed="impostor")
    message = refused(good_file, impostor)
    assert SIGNATURE in message and "different key" in message


def test_r16_file_signed_by_another_key_claiming_the_vendors_key_id_is_refused(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    forger = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    forged = sign_payload(forger, json.dumps(payload_of(good_file)).encode())
    envelope = json.loads(forged.split(b"\n", 1)[1])
    envelope["key_id"] = key_id_of(vendor.public_key)
    body = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
    message = refused(MAGIC + b"\n" + body + b"\n", vendor)
    assert "signature does not verify with the vendor's public key" in message


def test_r16_altered_payload_with_original_signature_is_refused(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    envelope = json.loads(good_file.split(b"\n", 1)[1])
    payload = payload_of(good_file)
    payload["units"] = 2500
    envelope["payload"] = base64.b64encode(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    body = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
    message = refused(MAGIC + b"\n" + body + b"\n", vendor)
    assert "altered" in message and SIGNATURE in message


def test_r16_wrong_console_token_is_refused(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    message = refused(good_file, vendor, token=OTHER_TOKEN)
    assert TOKEN_CHECK in message and PID in message
    other = vendor.offline_file(PID, OTHER_TOKEN)
    assert TOKEN_CHECK in refused(other, vendor)


def test_r16_future_issue_time_is_refused(vendor: InMemoryActivationServer) -> None:
    payload = payload_of(vendor.offline_file(PID, TOKEN))
    payload["issued_at"] = "2026-03-01T12:00:01Z"
    content = signed(vendor, payload)
    message = refused(content, vendor)
    assert FUTURE in message and PID in message
    # A console may allow for clock skew, explicitly.
    lenient = verify_offline_file(
        content,
        public_key=vendor.public_key,
        console_token=TOKEN,
        now=NOW,
        max_clock_skew=timedelta(minutes=5),
    )
    assert lenient.public_id == PID


def test_r16_future_issue_time_is_compared_in_utc(vendor: InMemoryActivationServer) -> None:
    content = vendor.offline_file(PID, TOKEN)  # issued 2026-02-28T12:00Z
    east = datetime(2026, 2, 28, 13, 0, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=5))
    )
    assert verify(content, vendor, now=east).public_id == PID
    assert FUTURE in refused(content, vendor, now=datetime(2026, 2, 28, 11, 59, tzinfo=UTC))


def test_r16_expired_license_is_refused(vendor: InMemoryActivationServer) -> None:
    payload = payload_of(vendor.offline_file(PID, TOKEN))
    payload["expires"] = "2026-02-28"
    message = refused(signed(vendor, payload), vendor)
    assert EXPIRED in message and PID in message


def test_r16_file_checked_after_the_license_expired_is_refused(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    assert EXPIRED in refused(good_file, vendor, now=datetime(2027, 2, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(random.Random(16).randbytes(600), id="random-bytes"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100), id="png-header"),
        pytest.param(b'{"public_id": "3AB-C12-D34"}', id="json-without-magic"),
        pytest.param(MAGIC, id="magic-only"),
        pytest.param(MAGIC + b"\n", id="magic-and-nothing"),
        pytest.param(MAGIC + b"\n{}\n", id="json-without-fields"),
        pytest.param(MAGIC + b'\n{"key_id":"x","payload":"AA=="}\n', id="missing-signature"),
        pytest.param(MAGIC + b"\n[1,2,3]\n", id="json-array"),
        pytest.param(MAGIC + b"\nnot json at all\n", id="not-json"),
        pytest.param(MAGIC + b"\n\xff\xfe{}\n", id="not-utf8"),
        pytest.param(MAGIC + b"\n" + b"[" * 40000 + b"\n", id="deep-nesting"),
        pytest.param(
            MAGIC + b'\n{"key_id":1,"payload":"AA==","signature":"AA=="}\n', id="key-id-number"
        ),
        pytest.param(
            MAGIC + b'\n{"key_id":"x","payload":"!!","signature":"AA=="}\n', id="bad-base64"
        ),
        pytest.param(
            MAGIC + b'\n{"key_id":"x","payload":"AA==","signature":"AA=="}\n', id="short-signature"
        ),
        pytest.param(
            MAGIC + b'\n{"key_id":"x","key_id":"y","payload":"AA==","signature":"AA=="}\n',
            id="duplicate-key",
        ),
        pytest.param(
            MAGIC + b'\n{"extra":1,"key_id":"x","payload":"AA==","signature":"AA=="}\n',
            id="unknown-field",
        ),
        pytest.param(
            MAGIC
            + b'\n{"key_id":"\\ud800","payload":"AA==","signature":"'
            + base64.b64encode(bytes(64))
            + b'"}\n',
            id="lone-surrogate",
        ),
    ],
)
def test_r16_not_a_file_at_all_is_refused(vendor: InMemoryActivationServer, content: bytes) -> None:
    assert NOT_A_FILE in refused(content, vendor)


def test_r16_bytes_of_other_types_are_refused(vendor: InMemoryActivationServer) -> None:
    with pytest.raises(InvalidLicenseFile, match=NOT_A_FILE):
        verify("ESMC-LF/1\n{}", vendor)  # type: ignore[arg-type]


def test_r16_ten_megabytes_of_noise_is_refused_quickly_by_the_size_check(
    vendor: InMemoryActivationServer,
) -> None:
    noise = os.urandom(10 * 1024 * 1024)
    started = time.perf_counter()
    message = refused(noise, vendor)
    elapsed = time.perf_counter() - started
    assert SIZE in message
    assert elapsed < 0.5  # generous; the check is a len()
    # Even noise that starts like a file is refused by size first.
    assert SIZE in refused(MAGIC + b"\n" + bytes(MAX_FILE_SIZE), vendor)


def test_r16_file_at_the_size_limit_is_not_refused_for_size(
    vendor: InMemoryActivationServer,
) -> None:
    message = refused(MAGIC + b"\n" + b" " * (MAX_FILE_SIZE - len(MAGIC) - 1), vendor)
    assert SIZE not in message and NOT_A_FILE in message


# -- payload fields --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("units", 0),
        ("units", -3),
        ("units", "25"),
        ("units", 2.5),
        ("units", True),
        ("offline_units", -1),
        ("subunits", None),
        ("public_id", "not-a-pid"),
        ("public_id", "3ab-c12-d34"),
        ("public_id", 42),
        ("license_type", "HOME"),
        ("license_type", ["BUSINESS"]),
        ("product", ""),
        ("product", 7),
        ("product", "x" * 1001),
        ("product_code", None),
        ("customer", ["ACME"]),
        ("contact", {"mail": "x"}),
        ("expires", "31.01.2027"),
        ("expires", "2027-02-30"),
        ("expires", "2027-W05-1"),
        ("expires", "2027-1-31"),
        ("expires", "2027-01-31T00:00:00"),
        ("expires", None),
        ("expires", 20270131),
        ("issued_at", "2026-02-28T12:00:00"),
        ("issued_at", "2026-02-28T12:00:00+01:00"),
        ("issued_at", "yesterday"),
        ("issued_at", "2026-02-28Z"),
        ("issued_at", "2026-02-28+00:00"),
        ("issued_at", "2026-02-28T12:00Z"),
        ("issued_at", "20260228T120000Z"),
        ("issued_at", "2026-02-28T12:00:00.1234567Z"),
        ("issued_at", "2026-02-30T12:00:00Z"),
        ("issued_at", 1772280000),
        ("console_token", ""),
        ("console_token", "has space"),
        ("console_token", 12345),
        ("subscription", "false"),
        ("subscription", 0),
    ],
)
def test_r16_malformed_payload_fields_are_refused(
    vendor: InMemoryActivationServer, good_file: bytes, field: str, value: object
) -> None:
    payload = payload_of(good_file)
    payload[field] = value
    message = refused(signed(vendor, payload), vendor)
    assert MALFORMED in message and field in message


@pytest.mark.parametrize("change", ["missing", "unknown", "not-json", "not-object"])
def test_r16_malformed_payload_documents_are_refused(
    vendor: InMemoryActivationServer, good_file: bytes, change: str
) -> None:
    payload = payload_of(good_file)
    raw: bytes
    if change == "missing":
        del payload["units"]
        raw = json.dumps(payload).encode()
    elif change == "unknown":
        payload["seats_for_free"] = 1000
        raw = json.dumps(payload).encode()
    elif change == "not-json":
        raw = b"units=25"
    else:
        raw = b"[]"
    message = refused(sign_payload(vendor_key(vendor), raw), vendor)
    assert MALFORMED in message
    assert "seats_for_free" not in message


# -- R9: subscriptions -----------------------------------------------------


def test_r16_subscription_refused_at_the_vendor(vendor: InMemoryActivationServer) -> None:
    with pytest.raises(InvalidLicenseFile, match="subscription") as info:
        vendor.offline_file(SUB_PID, TOKEN)
    assert isinstance(info.value, LicensingError)
    assert SUB_PID in str(info.value)


def test_r16_unknown_license_refused_at_the_vendor(vendor: InMemoryActivationServer) -> None:
    with pytest.raises(NotFound):
        vendor.offline_file("000-000-000", TOKEN)


def test_r16_vendor_refuses_a_malformed_token(vendor: InMemoryActivationServer) -> None:
    for token in ("", "with space", "x" * 129, "tab\t"):
        with pytest.raises(InvalidInput):
            vendor.offline_file(PID, token)


def test_r9_subscription_file_is_refused_by_the_console(vendor: InMemoryActivationServer) -> None:
    # A file the vendor would never write, but correctly signed: still refused.
    details = vendor.details_of(SUB_PID)
    content = sign_offline_file(vendor_key(vendor), details, TOKEN, NOW - timedelta(hours=1))
    assert payload_of(content)["expires"] is None
    message = refused(content, vendor)
    assert SUBSCRIPTION in message and SUB_PID in message
    dated = attrs.evolve(details, expires=date(2027, 1, 1))
    content = sign_offline_file(vendor_key(vendor), dated, TOKEN, NOW)
    assert SUBSCRIPTION in refused(content, vendor)


def test_r16_signer_refuses_naive_issue_time_and_unitless_license(
    vendor: InMemoryActivationServer,
) -> None:
    details = vendor.details_of(PID)
    with pytest.raises(InvalidInput):
        sign_offline_file(vendor_key(vendor), details, TOKEN, datetime(2026, 1, 1))
    with pytest.raises(InvalidInput):
        sign_offline_file(vendor_key(vendor), attrs.evolve(details, units=0), TOKEN, NOW)


def test_r16_verifier_needs_an_aware_now(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    with pytest.raises(InvalidInput):
        verify(good_file, vendor, now=datetime(2026, 3, 1))


# -- order of checks and messages --------------------------------------------


def test_r16_checks_run_in_the_documented_order(vendor: InMemoryActivationServer) -> None:
    """Each file fails every check from some point on; the first one is named."""
    base = payload_of(vendor.offline_file(PID, TOKEN))
    everything_wrong = dict(
        base,
        console_token=OTHER_TOKEN,
        issued_at="2030-01-01T00:00:00Z",
        expires="2020-01-01",
        subscription=True,
    )
    assert TOKEN_CHECK in refused(signed(vendor, everything_wrong), vendor)
    no_token = dict(everything_wrong, console_token=TOKEN)
    assert FUTURE in refused(signed(vendor, no_token), vendor)
    no_future = dict(no_token, issued_at="2026-01-01T00:00:00Z")
    assert EXPIRED in refused(signed(vendor, no_future), vendor)
    only_subscription = dict(no_future, expires="2027-01-01")
    assert SUBSCRIPTION in refused(signed(vendor, only_subscription), vendor)
    malformed_too = dict(everything_wrong, units=0)
    assert MALFORMED in refused(signed(vendor, malformed_too), vendor)
    impostor = InMemoryActivationServer(seed="impostor")
    wrong_key = sign_payload(impostor._signing_key(), json.dumps(malformed_too).encode())
    assert SIGNATURE in refused(wrong_key, vendor)
    assert NOT_A_FILE in refused(b"x" + wrong_key, vendor)
    assert SIZE in refused(wrong_key + bytes(MAX_FILE_SIZE), vendor)


def test_r16_messages_name_the_check_and_never_the_content(
    vendor: InMemoryActivationServer, good_file: bytes
) -> None:
    """Every refusal starts the same way, names its check, and hides the token."""
    payload = payload_of(good_file)
    cases = {
        SIZE: bytes(MAX_FILE_SIZE + 1),
        NOT_A_FILE: b"hello",
        SIGNATURE: _with_signature_bit_flipped(good_file),
        MALFORMED: signed(vendor, dict(payload, units=0)),
        TOKEN_CHECK: vendor.offline_file(PID, OTHER_TOKEN),
        FUTURE: signed(vendor, dict(payload, issued_at="2026-03-02T00:00:00Z")),
        EXPIRED: signed(vendor, dict(payload, expires="2026-01-01")),
    }
    for check, content in cases.items():
        message = refused(content, vendor)
        assert message.startswith("offline license file refused: ")
        assert check in message, (check, message)
        assert (NOT_A_FILE in message) == (check == NOT_A_FILE), message
        assert len(message) < 300


# -- robustness --------------------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(data=st.data())
def test_r16_any_signed_payload_is_accepted_or_refused_never_crashes(
    vendor: InMemoryActivationServer, good_file: bytes, data: st.DataObject
) -> None:
    payload = payload_of(good_file)
    fields = data.draw(st.lists(st.sampled_from(sorted(payload)), max_size=3), label="fields")
    for name in fields:
        payload[name] = data.draw(_json_values, label=name)
    try:
        result = verify(signed(vendor, payload), vendor)
    except InvalidLicenseFile:
        return
    assert result.details.units >= 1 and result.issued_at.tzinfo is not None


@given(content=st.binary(max_size=2000))
def test_r16_arbitrary_bytes_are_refused_as_not_a_file(
    vendor: InMemoryActivationServer, content: bytes
) -> None:
    assert NOT_A_FILE in refused(content, vendor)
