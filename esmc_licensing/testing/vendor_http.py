"""A real HTTP server for the vendor APIs, serving the in-memory vendor.

For tests of the HTTP clients (and products' own tests): a stdlib
``ThreadingHTTPServer`` bound to 127.0.0.1 on a free port, serving the APIs of
docs/formats/vendor-apis.md from an ``InMemoryActivationServer`` and an
``InMemoryAccounts``. Switches make it misbehave:

- ``fault(path, kind, times=None, delay=0.0)``: for requests whose path
  contains ``path``: ``"slow"`` (answer after ``delay`` seconds), ``"500"``
  (HTTP 500), ``"truncated"`` (Content-Length promises more than is sent),
  ``"cut"`` (a JSON body cut in half, correct length), ``"wrong_type"`` (numbers
  turned into text), ``"missing"`` (fields dropped), ``"drop"`` (the connection
  closed without an answer). ``times=None`` means every matching request.
- ``max_page``: answer paged listings with at most this many items, whatever
  ``take`` asked.
- ``token_uses``: EMA2 access tokens expire after this many uses (401), so the
  client must renew them.

>>> with VendorHttpServer(vendor, accounts) as server:
...     client = Ema2Client(server.url)
"""

from __future__ import annotations

import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import orjson

from ..adapters.accounts import InMemoryAccounts, VendorAccount
from ..adapters.http._base import license_json
from ..adapters.memory import InMemoryActivationServer
from ..domain.credentials import AccountRejected, Credentials
from ..domain.errors import LicensingError
from ..domain.ids import LicenseKey, PublicId
from ..domain.values import AccountKind, LicenseType


@attrs.define
class Fault:
    path: str
    kind: str
    times: int | None = None
    delay: float = 0.0


class _Answer(Exception):
    def __init__(self, status: int, body: Any = None) -> None:
        self.status = status
        self.body = body


def _wrong_types(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _wrong_types(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_wrong_types(v) for v in obj]
    if isinstance(obj, int) and not isinstance(obj, bool):
        return str(obj)
    return obj


def _drop_fields(obj: Any) -> Any:
    if isinstance(obj, dict):
        keys = sorted(obj)
        return {k: _drop_fields(v) for k, v in obj.items() if k != keys[-1]}
    if isinstance(obj, list):
        return [_drop_fields(v) for v in obj]
    return obj


class VendorHttpServer:
    """The vendor APIs on 127.0.0.1:<free port>; use as a context manager."""

    def __init__(
        self,
        vendor: InMemoryActivationServer,
        accounts: InMemoryAccounts | None = None,
        *,
        max_page: int | None = None,
        token_uses: int | None = None,
    ) -> None:
        self.vendor = vendor
        self.accounts = accounts or InMemoryAccounts(vendor)
        self.max_page = max_page
        self.token_uses = token_uses
        self.faults: list[Fault] = []
        self.requests: list[str] = []
        self.deactivations: list[tuple[str, str, str]] = []
        self._tokens: dict[str, list[Any]] = {}  # token -> [account, uses left]
        self._refresh: dict[str, VendorAccount] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer._handle(self, "GET")

            def do_POST(self) -> None:
                outer._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> VendorHttpServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> VendorHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fault(self, path: str, kind: str, times: int | None = None, delay: float = 0.0) -> None:
        kinds = {"slow", "500", "truncated", "cut", "wrong_type", "missing", "drop"}
        if kind not in kinds:
            raise ValueError(f"fault kind must be one of {sorted(kinds)}")
        with self._lock:
            self.faults.append(Fault(path, kind, times, delay))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.path in path and (f.times is None or f.times > 0):
                    if f.times is not None:
                        f.times -= 1
                    return f
        return None

    # -- plumbing -----------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        with self._lock:
            self.requests.append(f"{method} {path}")
        fault = self._fault_for(path)
        if fault is not None and fault.kind == "drop":
            h.close_connection = True
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = orjson.loads(raw) if raw else {}
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            status, answer = 200, self._route(method, path, body, query, h.headers)
        except _Answer as a:
            status, answer = a.status, a.body
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, LicensingError):
            status, answer = 400, {"error": "bad request"}
        if fault is not None and fault.kind == "500":
            status, answer = 500, {"error": "internal error"}
        if status == 204:
            h.send_response(204)
            h.end_headers()
            return
        if fault is not None and fault.kind == "wrong_type":
            answer = _wrong_types(answer)
        if fault is not None and fault.kind == "missing":
            answer = _drop_fields(answer)
        data = orjson.dumps(answer)
        promised = len(data)
        if fault is not None and fault.kind == "cut":
            data = data[: len(data) // 2]
            promised = len(data)
        if fault is not None and fault.kind == "truncated":
            promised = len(data)
            data = data[: len(data) // 2]
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(promised))
        h.end_headers()
        try:
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            pass
        if fault is not None and fault.kind == "truncated":
            h.close_connection = True

    def _page(self, items: list[Any], skip: int, take: int, key: str) -> dict[str, Any]:
        if take < 1 or take > 100 or skip < 0:
            raise _Answer(400, {"error": "take must be 1..100"})
        if self.max_page is not None:
            take = min(take, self.max_page)
        return {"totalCount": len(items), key: items[skip : skip + take]}

    def _bearer(self, headers: Any) -> str:
        value = headers.get("Authorization") or ""
        if not value.startswith("Bearer "):
            raise _Answer(401, {"error": "unauthorized"})
        return str(value[7:])

    def _issue_tokens(self, account: VendorAccount) -> dict[str, Any]:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        with self._lock:
            self._tokens[access] = [account, self.token_uses]
            self._refresh[refresh] = account
        return {"accessToken": access, "refreshToken": refresh, "expiresIn": 300}

    def _account_of(self, headers: Any) -> VendorAccount:
        token = self._bearer(headers)
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None:
                raise _Answer(401, {"error": "unauthorized"})
            if entry[1] is not None:
                if entry[1] <= 0:
                    raise _Answer(401, {"error": "token_expired"})
                entry[1] -= 1
        account: VendorAccount = entry[0]
        return account

    def _login(self, kind: AccountKind, body: dict[str, Any]) -> VendorAccount:
        try:
            creds = Credentials(body["username"], body["password"])
            return self.accounts.account(kind, creds)
        except (AccountRejected, LicensingError):
            raise _Answer(401, {"error": "invalid credentials"}) from None

    # -- routes -----------------------------------------------------------------------

    def _route(
        self, method: str, path: str, body: dict[str, Any], query: dict[str, str], headers: Any
    ) -> Any:
        if path.startswith("/api/"):
            return self._ema2(path[5:], body, headers)
        if path.startswith(("/eba/", "/ela/")):
            kind = AccountKind.EBA if path.startswith("/eba/") else AccountKind.ELA
            return self._eba_ela(kind, path[5:], body, query, headers)
        if path.startswith("/activation/"):
            return self._activation(path[12:], body)
        raise _Answer(404, {"error": "not found"})

    def _ema2(self, route: str, body: dict[str, Any], headers: Any) -> Any:
        if route == "Token/Get":
            return self._issue_tokens(self._login(AccountKind.EMA2, body))
        if route == "Token/Renew":
            with self._lock:
                account = self._refresh.pop(str(body.get("refreshToken")), None)
            if account is None:
                raise _Answer(401, {"error": "invalid refresh token"})
            return self._issue_tokens(account)
        account = self._account_of(headers)
        if route == "User/Current":
            assert account.account_type is not None
            return {
                "accountType": account.account_type.value,
                "username": account.credentials.username,
            }
        if route == "Search/Companies":
            companies = [
                {"companyId": c.company_id, "name": c.name, "parentId": c.parent_id}
                for c in account.companies
            ]
            return self._page(companies, int(body["skip"]), int(body["take"]), "companies")
        if route == "Search/Licenses":
            company = next(c for c in account.companies if c.company_id == body["companyId"])
            items = [{"publicLicenseKey": str(p)} for p in company.public_ids]
            return self._page(items, int(body["skip"]), int(body["take"]), "search")
        if route == "License/Detail":
            pid = PublicId(body["publicLicenseKey"])
            for c in account.companies:
                if pid in c.public_ids:
                    d = self.vendor.details_of(pid)
                    state = 3 if d.suspended else 2 if d.obsolete else 1
                    trial = d.license_type is LicenseType.TRIAL
                    exp = d.expires.isoformat() if d.expires else None
                    return {
                        "customerId": c.company_id,
                        "publicLicenseKey": str(pid),
                        "productCode": d.product_code,
                        "productName": d.product,
                        "quantity": d.units,
                        "usage": d.used_units,
                        "state": state,
                        "trial": trial,
                        "trialExpiration": exp if trial else None,
                        "expirationDate": None if trial else exp,
                        "subscription": d.subscription,
                    }
            raise _Answer(404, {"error": "no such license"})
        raise _Answer(404, {"error": "not found"})

    def _eba_ela(
        self,
        kind: AccountKind,
        route: str,
        body: dict[str, Any],
        query: dict[str, str],
        headers: Any,
    ) -> Any:
        if route == "Token":
            account = self._login(kind, body)
            token = secrets.token_hex(16)
            with self._lock:
                self._tokens[token] = [account, None]
            return {"token": token}
        account = self._account_of(headers)
        if account.kind is not kind:
            raise _Answer(401, {"error": "unauthorized"})
        company = account.companies[0]
        if route == "Account":
            return {
                "companyId": company.company_id,
                "companyName": company.name,
                "companyAccess": account.company_access.value if account.company_access else None,
                "site": account.site,
            }
        if route == "Licenses":
            items = [license_json(self.vendor.details_of(p)) for p in company.public_ids]
            return self._page(
                items, int(query.get("skip", 0)), int(query.get("take", 100)), "licenses"
            )
        raise _Answer(404, {"error": "not found"})

    def _activation(self, route: str, body: dict[str, Any]) -> Any:
        from ..domain.errors import LicenseKeyRejected, NotFound

        try:
            if route == "Verify":
                return license_json(self.vendor.verify_key(LicenseKey(body["licenseKey"])))
            if route.startswith("Licenses/"):
                return license_json(self.vendor.license_details(PublicId(route[9:])))
            if route == "Deactivate":
                if body["publicId"] is not None:  # null: activated outside the console
                    self.vendor.details_of(body["publicId"])
                with self._lock:
                    self.deactivations.append((body["publicId"], body["device"], body["product"]))
                raise _Answer(204)
            if route == "Usage":
                self.vendor.report_usage(body["publicId"], int(body["usedUnits"]))
                raise _Answer(204)
            if route == "Convert":
                key = self.vendor.convert_credentials(
                    Credentials(body["username"], body["password"])
                )
                return {"licenseKey": key.reveal()}
        except (LicenseKeyRejected, NotFound):
            raise _Answer(404, {"error": "unknown"}) from None
        raise _Answer(404, {"error": "not found"})
