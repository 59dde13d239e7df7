"""Offline license files (``.lf``, R16): the format, the vendor's signer, the verifier.

The format is specified in ``docs/formats/offline-license-file.md``. In short::

    ESMC-LF/1\\n
    {"key_id":"…","payload":"<base64>","signature":"<base64>"}\\n

``payload`` is canonical JSON describing one license and the console
installation the file was generated for; ``signature`` is an Ed25519 signature
over the exact payload bytes; ``key_id`` names the vendor key that signed.

:func:`verify_offline_file` runs the checks in a fixed order and refuses with an
``InvalidLicenseFile`` whose message names the check that failed. Messages
never quote file content, tokens or keys; the only value from the file they may
name is the license's Public ID, and only once the signature has verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..domain.errors import InvalidInput, InvalidLicenseFile, InvalidPublicId
from ..domain.ids import PublicId
from ..domain.values import LicenseDetails, LicenseType

__all__ = [
    "MAGIC",
    "MAX_FILE_SIZE",
    "Ed25519OfflineFileVerifier",
    "OfflineLicense",
    "key_id_of",
    "load_public_key",
    "sign_offline_file",
    "sign_payload",
    "verify_offline_file",
]

#: The first line of every version-1 file (without its ``\n``).
MAGIC: Final = b"ESMC-LF/1"
#: Files larger than this are refused before anything is parsed.
MAX_FILE_SIZE: Final = 64 * 1024
#: Console tokens are printable ASCII of at most this many characters.
MAX_TOKEN_LENGTH: Final = 128
#: Text fields (product, customer, contact, product code) are bounded.
MAX_TEXT_LENGTH: Final = 1000

_ENVELOPE_FIELDS: Final = ("key_id", "payload", "signature")
_PAYLOAD_FIELDS: Final = frozenset(
    {
        "public_id",
        "license_type",
        "product",
        "product_code",
        "units",
        "offline_units",
        "subunits",
        "expires",
        "customer",
        "contact",
        "issued_at",
        "console_token",
        "subscription",
    }
)
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_UTC_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z", re.ASCII)
_SIGNATURE_SIZE: Final = 64
_KEY_ID_BYTES: Final = 16


@attrs.frozen
class OfflineLicense:
    """What a verified offline license file says.

    ``details`` is the license as the vendor described it (``owner`` is the
    file's ``customer``); ``issued_at`` is when the vendor generated the file
    (timezone-aware, UTC); ``console_token`` the installation it is for.
    """

    details: LicenseDetails
    issued_at: datetime
    console_token: str

    @property
    def public_id(self) -> PublicId:
        return self.details.public_id


# -- keys ------------------------------------------------------------------


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """The key id written in files: hex of the first 16 bytes of SHA-256 of the raw key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:_KEY_ID_BYTES].hex()


def load_public_key(data: bytes | str) -> Ed25519PublicKey:
    """A vendor public key from its 32 raw bytes, or from PEM (SubjectPublicKeyInfo)."""
    raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    if len(raw) == 32:
        return Ed25519PublicKey.from_public_bytes(raw)
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError):
        raise InvalidInput(
            "the vendor public key must be 32 raw bytes or a PEM Ed25519 public key"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("the vendor public key must be an Ed25519 key")
    return key


# -- the vendor side -------------------------------------------------------


def _check_token(console_token: object) -> str:
    if (
        not isinstance(console_token, str)
        or not 0 < len(console_token) <= MAX_TOKEN_LENGTH
        or not all(" " < c <= "~" for c in console_token)
    ):
        raise InvalidInput(
            f"a console token is 1 to {MAX_TOKEN_LENGTH} printable ASCII characters "
            "without spaces (use app.console_token)"
        )
    return console_token


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput("the issue time of an offline license file must be timezone-aware")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _canonical_json(document: dict[str, Any]) -> bytes:
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign_payload(private_key: Ed25519PrivateKey, payload: bytes) -> bytes:
    """Wrap already-encoded payload bytes in a signed envelope.

    The building block of :func:`sign_offline_file`; exposed for tools and for
    tests that need files with unusual payloads. It does not look at the payload.
    """
    envelope = {
        "key_id": key_id_of(private_key.public_key()),
        "payload": _b64(payload),
        "signature": _b64(private_key.sign(payload)),
    }
    return MAGIC + b"\n" + _canonical_json(envelope) + b"\n"


def sign_offline_file(
    private_key: Ed25519PrivateKey,
    details: LicenseDetails,
    console_token: str,
    issued_at: datetime,
) -> bytes:
    """The vendor's side: an offline license file for ``details`` and one console.

    Writes ``details.subscription`` as it is, so that a verifier's subscription
    check can be exercised; a vendor refuses subscriptions before calling this
    (``InMemoryActivationServer.offline_file`` does). Raises ``InvalidInput`` for
    a malformed token, a naive ``issued_at`` or a license without units.
    """
    token = _check_token(console_token)
    if details.units < 1:
        raise InvalidInput("a license in an offline file has at least one unit")
    payload = {
        "public_id": str(details.public_id),
        "license_type": details.license_type.value,
        "product": details.product,
        "product_code": details.product_code,
        "units": details.units,
        "offline_units": details.offline_units,
        "subunits": details.subunits,
        "expires": details.expires.isoformat() if details.expires is not None else None,
        "customer": details.owner,
        "contact": details.contact,
        "issued_at": _utc_text(issued_at),
        "console_token": token,
        "subscription": details.subscription,
    }
    return sign_payload(private_key, _canonical_json(payload))


# -- the console side ------------------------------------------------------


def _refuse(check: str) -> InvalidLicenseFile:
    return InvalidLicenseFile(f"offline license file refused: {check}")


def _not_a_file(why: str) -> InvalidLicenseFile:
    return _refuse(
        f"this is not an ESMC offline license file ({why}); choose the .lf file the "
        "vendor generated for this console"
    )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key")
        result[key] = value
    return result


def _strict_b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise _not_a_file(f"its {what} is not base64 text")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _not_a_file(f"its {what} is not valid base64") from None
    # b64decode tolerates non-zero padding bits; only the canonical text is a file.
    if _b64(data) != text:
        raise _not_a_file(f"its {what} is not canonical base64")
    return data


def _parse_envelope(content: bytes) -> tuple[str, bytes, bytes]:
    magic, newline, rest = content.partition(b"\n")
    if magic != MAGIC or not newline:
        raise _not_a_file(f"it does not start with the line {MAGIC.decode()}")
    try:
        document = json.loads(rest.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _not_a_file("its body is not a JSON document") from None
    if not isinstance(document, dict):
        raise _not_a_file("its body is not a JSON object")
    missing = [name for name in _ENVELOPE_FIELDS if name not in document]
    if missing:
        raise _not_a_file("it lacks the field(s) " + ", ".join(missing))
    extra = sorted(set(document) - set(_ENVELOPE_FIELDS))
    if extra:
        raise _not_a_file("it has unknown envelope fields")
    key_id = document["key_id"]
    if not isinstance(key_id, str):
        raise _not_a_file("its key_id is not text")
    payload = _strict_b64(document["payload"], "payload")
    signature = _strict_b64(document["signature"], "signature")
    if len(signature) != _SIGNATURE_SIZE:
        raise _not_a_file("its signature is not 64 bytes")
    # Only one byte string is the file for these values: anything else was altered.
    try:
        canonical = MAGIC + b"\n" + _canonical_json(document) + b"\n"
    except UnicodeEncodeError:  # a lone surrogate escaped in the JSON text
        canonical = b""
    if content != canonical:
        raise _not_a_file("it is not in the canonical form the vendor writes; was it edited?")
    return key_id, payload, signature


def _malformed(why: str) -> InvalidLicenseFile:
    return _refuse(
        f"the signature is valid but the license data is malformed ({why}); "
        "ask the vendor for a new file"
    )


def _text(payload: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = payload[name]
    if (
        not isinstance(value, str)
        or len(value) > MAX_TEXT_LENGTH
        or any("\ud800" <= c <= "\udfff" for c in value)
    ):
        raise _malformed(f"{name} must be text of at most {MAX_TEXT_LENGTH} characters")
    if required and not value.strip():
        raise _malformed(f"{name} cannot be empty")
    return value


def _count(payload: dict[str, Any], name: str, minimum: int) -> int:
    value = payload[name]
    if type(value) is not int or value < minimum:
        raise _malformed(f"{name} must be a whole number of at least {minimum}")
    return value


def _expires(value: object, subscription: bool) -> date | None:
    if value is None and subscription:
        return None
    try:
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise _malformed("expires must be a date like 2027-01-31") from None


def _issued_at(value: object) -> datetime:
    try:
        if not isinstance(value, str) or not _UTC_TIME.fullmatch(value):
            raise ValueError(value)
        # Pad the fraction to 6 digits: fromisoformat in 3.11 takes only 3 or 6.
        main, _, fraction = value[:-1].partition(".")
        if fraction:
            main += "." + fraction.ljust(6, "0")
        return datetime.fromisoformat(main + "+00:00")
    except ValueError:
        raise _malformed("issued_at must be a UTC time like 2026-01-01T09:00:00Z") from None


def _parse_payload(payload_bytes: bytes) -> tuple[LicenseDetails, datetime, str]:
    try:
        payload = json.loads(payload_bytes.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed("it is not a JSON document") from None
    if not isinstance(payload, dict):
        raise _malformed("it is not a JSON object")
    missing = sorted(_PAYLOAD_FIELDS - set(payload))
    if missing:
        raise _malformed("missing " + ", ".join(missing))
    extra = sorted(set(payload) - _PAYLOAD_FIELDS)
    if extra:
        raise _malformed("it has fields this format version does not define")
    try:
        public_id = PublicId(payload["public_id"])
    except InvalidPublicId:
        raise _malformed("public_id is not a Public ID like 3AB-C12-D34") from None
    if payload["public_id"] != str(public_id):
        raise _malformed("public_id is not in canonical upper-case form")
    try:
        license_type = LicenseType(payload["license_type"])
    except (ValueError, TypeError):
        names = ", ".join(t.value for t in LicenseType)
        raise _malformed(f"license_type must be one of {names}") from None
    units = _count(payload, "units", 1)
    offline_units = _count(payload, "offline_units", 0)
    subunits = _count(payload, "subunits", 0)
    subscription = payload["subscription"]
    if type(subscription) is not bool:
        raise _malformed("subscription must be true or false")
    expires = _expires(payload["expires"], subscription)
    issued_at = _issued_at(payload["issued_at"])
    token = payload["console_token"]
    try:
        token = _check_token(token)
    except InvalidInput:
        raise _malformed("console_token must be printable text") from None
    details = LicenseDetails(
        public_id=public_id,
        product=_text(payload, "product", required=True),
        units=units,
        license_type=license_type,
        product_code=_text(payload, "product_code"),
        offline_units=offline_units,
        subunits=subunits,
        expires=expires,
        subscription=subscription,
        owner=_text(payload, "customer"),
        contact=_text(payload, "contact"),
    )
    return details, issued_at, token


def verify_offline_file(
    content: bytes,
    *,
    public_key: Ed25519PublicKey,
    console_token: str,
    now: datetime,
    max_clock_skew: timedelta = timedelta(0),
) -> OfflineLicense:
    """Check an offline license file and return what it says.

    The checks, in this order; the first that fails raises ``InvalidLicenseFile``
    naming it:

    1. size: at most :data:`MAX_FILE_SIZE` bytes;
    2. shape: the ``ESMC-LF/1`` envelope, exactly as the vendor writes it;
    3. signature: made by ``public_key`` over the exact payload bytes;
    4. license data: every payload field present and well-formed;
    5. console token: the file was generated for ``console_token``;
    6. issue time: not after ``now`` (plus ``max_clock_skew``);
    7. expiration: ``expires`` is not before ``now``'s UTC date;
    8. subscription: a subscription license cannot come from a file (R9, R16).

    ``now`` must be timezone-aware. Nothing outside the arguments is touched.
    """
    if not isinstance(content, bytes | bytearray | memoryview):
        raise _not_a_file("it is not bytes")
    if len(content) > MAX_FILE_SIZE:
        raise _refuse(
            f"the file is too large to be a license file ({len(content)} bytes; "
            f"at most {MAX_FILE_SIZE} bytes); choose the .lf file the vendor generated"
        )
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput("verifying an offline license file needs a timezone-aware 'now'")
    key_id, payload_bytes, signature = _parse_envelope(bytes(content))

    if not hmac.compare_digest(key_id.encode("utf-8"), key_id_of(public_key).encode()):
        raise _refuse(
            "the signature is not from the vendor key this console trusts (the file was "
            "signed with a different key); ask the vendor for a file signed with its "
            "current key, or configure the right vendor public key"
        )
    try:
        public_key.verify(signature, payload_bytes)
    except InvalidSignature:
        raise _refuse(
            "the signature does not verify with the vendor's public key: the file was "
            "altered or damaged after the vendor signed it; download it again"
        ) from None

    details, issued_at, token = _parse_payload(payload_bytes)
    pid = details.public_id

    if not hmac.compare_digest(token.encode(), str(console_token).encode()):
        raise _refuse(
            f"the file for license {pid} was generated for another console installation "
            "(its console token does not match this console's); generate a new file "
            "with this console's token"
        )
    now_utc = now.astimezone(UTC)
    if issued_at > now_utc + max_clock_skew:
        raise _refuse(
            f"the file for license {pid} has an issue time in the future (later than "
            "this console's current time); check this console's clock and time zone"
        )
    if details.expires is not None and details.expires < now_utc.date():
        raise _refuse(
            f"license {pid} in the file has already expired; renew the license and "
            "generate a new file"
        )
    if details.subscription:
        raise _refuse(
            f"license {pid} is a subscription, and a subscription license cannot be "
            "added from an offline file; add it through its account or license key"
        )
    return OfflineLicense(details=details, issued_at=issued_at, console_token=token)


class Ed25519OfflineFileVerifier:
    """The ``OfflineFileVerifier`` port over :func:`verify_offline_file`.

    ``public_key`` is the vendor's Ed25519 public key (an ``Ed25519PublicKey``,
    or its 32 raw bytes or PEM, see :func:`load_public_key`).
    """

    def __init__(
        self,
        public_key: Ed25519PublicKey | bytes | str,
        *,
        max_clock_skew: timedelta = timedelta(0),
    ) -> None:
        if not isinstance(public_key, Ed25519PublicKey):
            public_key = load_public_key(public_key)
        if max_clock_skew < timedelta(0):
            raise InvalidInput("max_clock_skew cannot be negative")
        self._public_key = public_key
        self._max_clock_skew = max_clock_skew

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public_key

    @property
    def key_id(self) -> str:
        return key_id_of(self._public_key)

    def verify(self, content: bytes, console_token: str, now: datetime) -> OfflineLicense:
        return verify_offline_file(
            content,
            public_key=self._public_key,
            console_token=console_token,
            now=now,
            max_clock_skew=self._max_clock_skew,
        )

    def __repr__(self) -> str:
        return f"Ed25519OfflineFileVerifier(key_id={self.key_id!r})"
