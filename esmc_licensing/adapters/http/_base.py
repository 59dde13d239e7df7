"""What the HTTP clients share: bounded retries, timeouts, strict payload reading.

Retries: on timeouts, dropped or refused connections and 5xx answers, up to
``RetryPolicy.attempts`` tries with exponential backoff; never on 4xx (the
service said no; asking again will not change that). Every payload is read
field by field into domain values; a missing, extra-typed or malformed field
is a ``BadPayload`` naming the field, so a bad answer never becomes a
half-import. Messages never carry credentials, tokens or license keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

import attrs
import httpx
import orjson

from ...domain.credentials import AccountRejected, Credentials
from ...domain.errors import AdapterUnavailable
from ...domain.values import LicenseDetails, LicenseType


class BadPayload(AdapterUnavailable):
    """A service answered with a payload that is malformed, partial or unexpected."""


@attrs.frozen
class RetryPolicy:
    """Bounded retries with exponential backoff (seconds)."""

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0
    timeout: float = 10.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * (2**attempt)))


class JsonClient:
    """An ``httpx.Client`` with the retry policy and a service name for messages."""

    def __init__(
        self,
        base_url: str,
        *,
        service: str,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(self.retry.timeout),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One logical request: retried on timeouts, transport errors and 5xx only."""
        problem = "did not answer"
        for attempt in range(self.retry.attempts):
            if attempt:
                self._sleep(self.retry.delay(attempt - 1))
            try:
                response = self._client.request(
                    method, path, json=json, params=params, headers=headers
                )
            except httpx.TimeoutException:
                problem = "timed out"
                continue
            except httpx.TransportError as e:
                problem = f"dropped the connection ({type(e).__name__})"
                continue
            if response.status_code >= 500:
                problem = f"answered HTTP {response.status_code}"
                continue
            return response
        raise AdapterUnavailable(
            f"the {self.service} {problem} ({self.retry.attempts} attempts on {path}); "
            "try again later"
        )

    def body(self, response: httpx.Response, where: str) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise BadPayload(
                f"the {self.service} answered {where} with a body that is not JSON "
                "(truncated or malformed)"
            ) from None

    def sign_in(self, path: str, credentials: Credentials, where: str) -> httpx.Response:
        """POST the username and password; the 200 answer, else a clear refusal."""
        response = self.request(
            "POST",
            path,
            json={"username": credentials.username, "password": credentials.reveal_password()},
        )
        if response.status_code in (401, 403):
            raise AccountRejected(
                f"the {self.service} refused the credentials of {credentials.username!r}: "
                "wrong username or password"
            )
        if response.status_code != 200:
            raise self.unexpected(response, where)
        return response

    def unexpected(self, response: httpx.Response, where: str) -> AdapterUnavailable:
        return AdapterUnavailable(
            f"the {self.service} answered {where} with HTTP {response.status_code}"
        )


class Reader:
    """Strict reading of one JSON object: every field named in its error."""

    def __init__(self, obj: object, where: str, service: str) -> None:
        if not isinstance(obj, dict):
            raise BadPayload(f"the {service} answered {where} with something other than an object")
        self.obj: dict[str, Any] = obj
        self.where = where
        self.service = service

    def bad(self, name: str, expected: str) -> BadPayload:
        return BadPayload(
            f"the {self.service} answered {self.where} with a bad field {name!r}: "
            f"expected {expected}"
        )

    def _get(self, name: str, optional: bool) -> Any:
        if name not in self.obj:
            if optional:
                return None
            raise BadPayload(f"the {self.service} answered {self.where} without the field {name!r}")
        return self.obj[name]

    def text(self, name: str, *, optional: bool = False, max_length: int = 500) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        if not isinstance(value, str) or len(value) > max_length:
            raise self.bad(name, f"text of at most {max_length} characters")
        return value

    def integer(self, name: str, *, minimum: int = 0, maximum: int = 10**9) -> int:
        value = self._get(name, False)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.bad(name, f"a whole number from {minimum} to {maximum}")
        return value

    def flag(self, name: str, *, optional: bool = False, default: bool = False) -> bool:
        value = self._get(name, optional)
        if value is None and optional:
            return default
        if not isinstance(value, bool):
            raise self.bad(name, "true or false")
        return value

    def day(self, name: str, *, nullable: bool = True) -> date | None:
        value = self._get(name, False)
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise self.bad(name, "a date like 2027-06-30" + (" or null" if nullable else ""))
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.bad(name, "a date like 2027-06-30") from None

    def items(self, name: str, *, max_items: int = 10_000) -> list[Any]:
        value = self._get(name, False)
        if not isinstance(value, list) or len(value) > max_items:
            raise self.bad(name, f"a list of at most {max_items} items")
        return value

    def enum(self, name: str, choices: Mapping[Any, Any]) -> Any:
        value = self._get(name, False)
        if isinstance(value, bool) or value not in choices:
            raise self.bad(name, "one of " + ", ".join(str(c) for c in choices))
        return choices[value]


_TYPES = {t.value: t for t in LicenseType}


def read_license(obj: object, where: str, service: str) -> LicenseDetails:
    """The license JSON of the EBA/ELA and activation-server APIs (docs/formats/vendor-apis.md)."""
    r = Reader(obj, where, service)
    from ...domain.errors import LicensingError
    from ...domain.ids import PublicId

    try:
        public_id = PublicId(r.text("publicId", max_length=11))
    except LicensingError:
        raise r.bad("publicId", "a Public ID like 3AB-C12-D34") from None
    units = r.integer("units", minimum=1)
    expires = r.day("expires")
    subscription = r.flag("subscription")
    if expires is None and not subscription:
        raise r.bad("expires", "a date (only a subscription may have none)")
    registered = r.flag("registered")
    return LicenseDetails(
        public_id=public_id,
        product=r.text("product", max_length=200),
        product_code=r.text("productCode", max_length=50),
        units=units,
        license_type=r.enum("licenseType", _TYPES),
        offline_units=r.integer("offlineUnits"),
        subunits=r.integer("subunits"),
        expires=expires,
        subscription=subscription,
        owner=r.text("owner", max_length=200),
        contact=r.text("contact", max_length=200),
        license_user=r.text("licenseUser", max_length=200),
        registered=registered,
        registration_url=r.text("registrationUrl", optional=True, max_length=500),
        suspended=r.flag("suspended"),
        obsolete=r.flag("obsolete"),
        used_units=r.integer("usedUnits"),
    )


def license_json(d: LicenseDetails) -> dict[str, Any]:
    """The license JSON for a ``LicenseDetails`` (what the test servers send)."""
    return {
        "publicId": str(d.public_id),
        "product": d.product,
        "productCode": d.product_code,
        "units": d.units,
        "licenseType": d.license_type.value,
        "offlineUnits": d.offline_units,
        "subunits": d.subunits,
        "expires": d.expires.isoformat() if d.expires else None,
        "subscription": d.subscription,
        "owner": d.owner,
        "contact": d.contact,
        "licenseUser": d.license_user,
        "registered": d.registered,
        "registrationUrl": d.registration_url,
        "suspended": d.suspended,
        "obsolete": d.obsolete,
        "usedUnits": d.used_units,
    }


def paged(
    fetch: Callable[[int, int], tuple[list[Any], int]],
    *,
    take: int,
    max_pages: int,
    service: str,
    where: str,
) -> list[Any]:
    """Every item of a paged listing (skip/take/totalCount), in a bounded loop."""
    items: list[Any] = []
    total = None
    for _ in range(max_pages):
        page, total = fetch(len(items), take)
        if len(page) > take:
            raise BadPayload(f"the {service} answered {where} with more items than asked for")
        items.extend(page)
        if len(items) >= total:
            if len(items) > total:
                raise BadPayload(f"the {service} answered {where} with more items than totalCount")
            return items
        if not page:
            raise BadPayload(
                f"the {service} answered {where} with an empty page before totalCount "
                f"({len(items)} of {total})"
            )
    raise BadPayload(f"the {service} answered {where} with more than {max_pages} pages")
