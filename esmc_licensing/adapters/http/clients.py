"""HTTP clients for the vendor's services (docs/formats/vendor-apis.md).

- ``Ema2Client``: ESET MSP Administrator 2 style API. ``Token/Get`` logs in,
  ``Token/Renew`` refreshes the short-lived access token when the service says
  it expired, ``Search/Companies`` and ``Search/Licenses`` are paged
  (take <= 100), ``License/Detail`` gives each license.
- ``AccountApiClient``: the EBA and ELA account APIs (one small JSON API each).
- ``HttpAccounts``: the ``AccountService`` port over those clients.
- ``HttpActivationServer``: the ``ActivationServer`` port (verify a key, license
  details, deactivate a device, report usage, convert legacy credentials).
"""

from __future__ import annotations

from typing import Any

import httpx

from ...domain.account import AccountCompany, AccountSnapshot
from ...domain.credentials import Credentials
from ...domain.errors import AdapterUnavailable, LicenseKeyRejected, LicensingError, NotFound
from ...domain.ids import LicenseKey, PublicId
from ...domain.values import (
    AccountKind,
    CompanyAccess,
    Ema2AccountType,
    LicenseDetails,
    LicenseType,
)
from ._base import BadPayload, JsonClient, Reader, RetryPolicy, paged, read_license

MAX_TAKE = 100

#: EMA2 license states (License/Detail ``state``)
EMA2_STATES = {0: "Error", 1: "Normal", 2: "Obsolete", 3: "Suspended", 4: "Warning"}
_EMA2_TYPES = {t.value: t for t in Ema2AccountType}
_ACCESS = {a.value: a for a in CompanyAccess}


class Ema2Client:
    """An EMA2 account, read over HTTP."""

    service = "EMA2 account service"

    def __init__(
        self,
        base_url: str,
        *,
        retry: RetryPolicy | None = None,
        take: int = MAX_TAKE,
        max_pages: int = 1000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not 1 <= take <= MAX_TAKE:
            raise ValueError(f"EMA2 pages hold 1 to {MAX_TAKE} items")
        self.http = JsonClient(base_url, service=self.service, retry=retry, transport=transport)
        self.take = take
        self.max_pages = max_pages
        self._access = ""
        self._refresh = ""

    def close(self) -> None:
        self.http.close()

    def _tokens(self, response: httpx.Response, where: str) -> None:
        r = Reader(self.http.body(response, where), where, self.service)
        self._access = r.text("accessToken", max_length=4096)
        self._refresh = r.text("refreshToken", max_length=4096)
        r.integer("expiresIn", minimum=1, maximum=10**7)

    def login(self, credentials: Credentials) -> None:
        where = "Token/Get"
        self._tokens(self.http.sign_in("/api/Token/Get", credentials, where), where)

    def _renew(self) -> None:
        where = "Token/Renew"
        response = self.http.request(
            "POST", "/api/Token/Renew", json={"refreshToken": self._refresh}
        )
        if response.status_code != 200:
            raise AdapterUnavailable(
                f"the {self.service} refused to renew the session (HTTP {response.status_code})"
            )
        self._tokens(response, where)

    def call(self, path: str, body: dict[str, Any]) -> Any:
        """A POST with the access token; renews it once if the service says it expired."""
        where = path.removeprefix("/api/")
        for renewed in (False, True):
            response = self.http.request(
                "POST", path, json=body, headers={"Authorization": f"Bearer {self._access}"}
            )
            if response.status_code == 401 and not renewed:
                self._renew()
                continue
            if response.status_code != 200:
                raise self.http.unexpected(response, where)
            return self.http.body(response, where)
        raise AdapterUnavailable(f"the {self.service} kept refusing a renewed session")

    def _page(self, path: str, key: str, extra: dict[str, Any]) -> list[Any]:
        where = path.removeprefix("/api/")

        def fetch(skip: int, take: int) -> tuple[list[Any], int]:
            r = Reader(self.call(path, {**extra, "skip": skip, "take": take}), where, self.service)
            return r.items(key, max_items=MAX_TAKE), r.integer("totalCount", maximum=10**7)

        return paged(
            fetch, take=self.take, max_pages=self.max_pages, service=self.service, where=where
        )

    def fetch(self, credentials: Credentials) -> AccountSnapshot:
        self.login(credentials)
        user = Reader(self.call("/api/User/Current", {}), "User/Current", self.service)
        account_type = user.enum("accountType", _EMA2_TYPES)
        companies = []
        for item in self._page("/api/Search/Companies", "companies", {}):
            c = Reader(item, "Search/Companies", self.service)
            company_id = c.text("companyId", max_length=100)
            name = c.text("name", max_length=200)
            parent = c.text("parentId", optional=True, max_length=100)
            licenses = tuple(
                self._detail(Reader(entry, "Search/Licenses", self.service), company_id, name)
                for entry in self._page("/api/Search/Licenses", "search", {"companyId": company_id})
            )
            companies.append(AccountCompany(company_id, name, licenses, parent))
        return AccountSnapshot(
            kind=AccountKind.EMA2, companies=tuple(companies), account_type=account_type
        )

    def _detail(self, entry: Reader, company_id: str, company: str) -> LicenseDetails:
        key = entry.text("publicLicenseKey", max_length=11)
        r = Reader(
            self.call("/api/License/Detail", {"publicLicenseKey": key}),
            "License/Detail",
            self.service,
        )
        try:
            public_id = PublicId(r.text("publicLicenseKey", max_length=11))
        except LicensingError:
            raise r.bad("publicLicenseKey", "a Public ID like 3AB-C12-D34") from None
        if public_id != key:
            raise r.bad("publicLicenseKey", f"the license asked for ({key})")
        if r.text("customerId", max_length=100) != company_id:
            raise r.bad("customerId", f"the company the license was listed under ({company})")
        state = r.enum("state", {k: k for k in EMA2_STATES})
        trial = r.flag("trial")
        trial_expiration = r.day("trialExpiration")
        expires = trial_expiration if trial else r.day("expirationDate")
        subscription = r.flag("subscription", optional=True)
        if expires is None and not subscription:
            raise r.bad("expirationDate" if not trial else "trialExpiration", "a date")
        return LicenseDetails(
            public_id=public_id,
            product=r.text("productName", max_length=200),
            product_code=r.text("productCode", max_length=50),
            units=r.integer("quantity", minimum=1),
            used_units=r.integer("usage"),
            license_type=LicenseType.TRIAL if trial else LicenseType.MSP,
            expires=expires,
            subscription=subscription,
            owner=company,
            license_user=company,
            suspended=state == 3,
            obsolete=state == 2,
        )


class AccountApiClient:
    """An EBA or ELA account, read over HTTP (``/eba/...`` or ``/ela/...``)."""

    def __init__(
        self,
        base_url: str,
        kind: AccountKind,
        *,
        retry: RetryPolicy | None = None,
        take: int = MAX_TAKE,
        max_pages: int = 1000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if kind is AccountKind.EMA2:
            raise ValueError("use Ema2Client for EMA2 accounts")
        self.kind = kind
        self.service = f"{kind.value} account service"
        self.prefix = f"/{kind.value.lower()}"
        self.http = JsonClient(base_url, service=self.service, retry=retry, transport=transport)
        self.take = take
        self.max_pages = max_pages

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, token: str, params: dict[str, Any] | None = None) -> Any:
        response = self.http.request(
            "GET", self.prefix + path, params=params, headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code != 200:
            raise self.http.unexpected(response, path.strip("/"))
        return self.http.body(response, path.strip("/"))

    def fetch(self, credentials: Credentials) -> AccountSnapshot:
        response = self.http.sign_in(self.prefix + "/Token", credentials, "Token")
        token = Reader(self.http.body(response, "Token"), "Token", self.service).text(
            "token", max_length=4096
        )
        acc = Reader(self._get("/Account", token), "Account", self.service)
        company_id = acc.text("companyId", max_length=100)
        company = acc.text("companyName", max_length=200)
        access = acc.enum("companyAccess", _ACCESS) if self.kind is AccountKind.EBA else None
        site = (
            acc.text("site", optional=True, max_length=200)
            if self.kind is AccountKind.EBA
            else None
        )

        def fetch_page(skip: int, take: int) -> tuple[list[Any], int]:
            r = Reader(
                self._get("/Licenses", token, {"skip": skip, "take": take}),
                "Licenses",
                self.service,
            )
            return r.items("licenses", max_items=MAX_TAKE), r.integer("totalCount", maximum=10**7)

        items = paged(
            fetch_page,
            take=self.take,
            max_pages=self.max_pages,
            service=self.service,
            where="Licenses",
        )
        licenses = tuple(read_license(i, "Licenses", self.service) for i in items)
        return AccountSnapshot(
            kind=self.kind,
            companies=(AccountCompany(company_id, company, licenses),),
            company_access=access,
            site=site,
        )


class HttpAccounts:
    """The ``AccountService`` port over HTTP clients, one per account kind."""

    def __init__(
        self,
        *,
        ema2: Ema2Client | None = None,
        eba: AccountApiClient | None = None,
        ela: AccountApiClient | None = None,
    ) -> None:
        self.clients: dict[AccountKind, Any] = {
            k: c
            for k, c in ((AccountKind.EMA2, ema2), (AccountKind.EBA, eba), (AccountKind.ELA, ela))
            if c is not None
        }

    @classmethod
    def at(cls, base_url: str, *, retry: RetryPolicy | None = None) -> HttpAccounts:
        """All three account APIs at one base URL (as the test server serves them)."""
        return cls(
            ema2=Ema2Client(base_url, retry=retry),
            eba=AccountApiClient(base_url, AccountKind.EBA, retry=retry),
            ela=AccountApiClient(base_url, AccountKind.ELA, retry=retry),
        )

    def fetch(self, kind: AccountKind, credentials: Credentials) -> AccountSnapshot:
        client = self.clients.get(kind)
        if client is None:
            raise AdapterUnavailable(f"no {kind.value} account service is configured")
        snapshot: AccountSnapshot = client.fetch(credentials)
        return snapshot

    def close(self) -> None:
        for c in self.clients.values():
            c.close()


class HttpActivationServer:
    """The ``ActivationServer`` port over HTTP (``/activation/...``)."""

    service = "activation server"

    def __init__(
        self,
        base_url: str,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = JsonClient(base_url, service=self.service, retry=retry, transport=transport)

    def close(self) -> None:
        self.http.close()

    def verify_key(self, key: LicenseKey) -> LicenseDetails:
        response = self.http.request(
            "POST", "/activation/Verify", json={"licenseKey": key.reveal()}
        )
        if response.status_code in (404, 410):
            raise LicenseKeyRejected(
                f"the activation server does not know the license key ending in {key.last4}"
            )
        if response.status_code != 200:
            raise self.http.unexpected(response, "Verify")
        return read_license(self.http.body(response, "Verify"), "Verify", self.service)

    def license_details(self, public_id: PublicId) -> LicenseDetails:
        response = self.http.request("GET", f"/activation/Licenses/{PublicId(public_id)}")
        if response.status_code == 404:
            raise NotFound("license", public_id)
        if response.status_code != 200:
            raise self.http.unexpected(response, "Licenses")
        details = read_license(self.http.body(response, "Licenses"), "Licenses", self.service)
        if details.public_id != public_id:
            raise BadPayload(f"the {self.service} answered for another license than {public_id}")
        return details

    def deactivate(self, public_id: PublicId | None, device: str, product: str) -> None:
        """Remove a product's activation from a device (R24), the port's call.

        ``public_id`` None (a product activated outside this console, or with
        a license it does not hold) is sent as ``null``: the server finds the
        activation by device and product.
        """
        self.deactivate_device(public_id, device, product)

    def deactivate_device(self, public_id: PublicId | None, device: str, product: str) -> None:
        """Free the seat a device holds (R24)."""
        response = self.http.request(
            "POST",
            "/activation/Deactivate",
            json={
                "publicId": None if public_id is None else str(public_id),
                "device": device,
                "product": product,
            },
        )
        if response.status_code == 404:
            raise NotFound("license", public_id)
        if response.status_code != 204:
            raise self.http.unexpected(response, "Deactivate")

    def report_usage(self, public_id: PublicId, used_units: int) -> None:
        response = self.http.request(
            "POST", "/activation/Usage", json={"publicId": str(public_id), "usedUnits": used_units}
        )
        if response.status_code == 404:
            raise NotFound("license", public_id)
        if response.status_code != 204:
            raise self.http.unexpected(response, "Usage")

    def convert_credentials(self, credentials: Credentials) -> LicenseKey:
        response = self.http.request(
            "POST",
            "/activation/Convert",
            json={"username": credentials.username, "password": credentials.reveal_password()},
        )
        if response.status_code in (401, 404):
            raise LicenseKeyRejected(
                "the activation server does not know these legacy credentials "
                f"(username {credentials.username!r})"
            )
        if response.status_code != 200:
            raise self.http.unexpected(response, "Convert")
        r = Reader(self.http.body(response, "Convert"), "Convert", self.service)
        try:
            return LicenseKey(r.text("licenseKey", max_length=24))
        except LicensingError:
            raise r.bad("licenseKey", "a license key") from None
