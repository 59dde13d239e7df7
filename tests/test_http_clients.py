"""HTTP clients against a real server on 127.0.0.1 (R17, R18 faults, R15, R2).

The server (``esmc_licensing.testing.vendor_http``) serves the documented APIs
from the in-memory vendor and misbehaves on request: slow, 500, truncated,
cut, wrong-typed, missing fields, dropped connections, small pages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from esmc_licensing import (
    AccountKind,
    AccountRejected,
    Adapters,
    AdapterUnavailable,
    CompanyAccess,
    Credentials,
    Ema2AccountType,
    InMemoryAccounts,
    LicenseKey,
    LicenseKeyRejected,
    LicenseManagement,
    PublicId,
    StatusLevel,
)
from esmc_licensing.adapters.http import (
    AccountApiClient,
    BadPayload,
    Ema2Client,
    HttpAccounts,
    HttpActivationServer,
    RetryPolicy,
)
from esmc_licensing.adapters.ports import ActivationServer
from esmc_licensing.testing.vendor_http import VendorHttpServer

from .conftest import AppFactory, issue, recorded

MSP = Credentials("msp@example.com", "s3cr3t-Passw0rd")
OTHER = Credentials("other@example.com", "0ther-Passw0rd")
EBA = Credentials("admin@acme.example", "eba-Passw0rd!")
FAST = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02, timeout=0.5)


@pytest.fixture
def accounts(vendor) -> InMemoryAccounts:
    accounts = InMemoryAccounts(vendor)
    companies = {f"Company {c}": [f"C{c:02d}-000-{i:03d}" for i in range(5)] for c in range(3)}
    for ids in companies.values():
        for pid in ids:
            issue(vendor, pid, owner="")
    accounts.add_ema2_account(MSP, Ema2AccountType.MSP, companies=companies)
    issue(vendor, "O01-000-001", owner="")
    accounts.add_ema2_account(OTHER, Ema2AccountType.MSP, companies={"Other": ["O01-000-001"]})
    issue(vendor, "E01-000-001")
    issue(vendor, "E01-000-002")
    accounts.add_eba_account(EBA, "Acme", ["E01-000-001", "E01-000-002"])
    return accounts


@pytest.fixture
def server(vendor, accounts) -> Iterator[VendorHttpServer]:
    with VendorHttpServer(vendor, accounts, max_page=2) as s:
        yield s


@pytest.fixture
def http_accounts(server: VendorHttpServer) -> Iterator[HttpAccounts]:
    h = HttpAccounts.at(server.url, retry=FAST)
    yield h
    h.close()


def test_r17_ema2_client_pages_and_reads_every_license(
    server: VendorHttpServer, http_accounts: HttpAccounts, vendor
) -> None:
    snap = http_accounts.fetch(AccountKind.EMA2, MSP)
    assert snap.account_type is Ema2AccountType.MSP
    assert [c.name for c in snap.companies] == ["Company 0", "Company 1", "Company 2"]
    ids = [d.public_id for c in snap.companies for d in c.licenses]
    assert ids == [PublicId(f"C{c:02d}-000-{i:03d}") for c in range(3) for i in range(5)]
    d = snap.companies[0].licenses[0]
    assert (d.units, d.expires) == (10, vendor.details_of(d.public_id).expires)
    # max_page=2: several pages per listing, and no request asked for more than 100
    assert sum("Search/Licenses" in r for r in server.requests) >= 9


def test_r17_ema2_client_renews_an_expired_access_token(vendor, accounts) -> None:
    with VendorHttpServer(vendor, accounts, token_uses=3) as s:
        client = Ema2Client(s.url, retry=FAST)
        snap = client.fetch(MSP)
        client.close()
    assert sum(len(c.licenses) for c in snap.companies) == 15
    assert any("Token/Renew" in r for r in s.requests)


def test_r17_ema2_client_refuses_take_over_100() -> None:
    with pytest.raises(ValueError):
        Ema2Client("http://127.0.0.1:9", take=101)


def test_r17_wrong_credentials_are_refused_without_retry(
    server: VendorHttpServer, http_accounts: HttpAccounts
) -> None:
    with pytest.raises(AccountRejected) as err:
        http_accounts.fetch(AccountKind.EMA2, Credentials(MSP.username, "wrong-one"))
    assert "wrong-one" not in str(err.value)
    assert sum("Token/Get" in r for r in server.requests) == 1


def test_r17_eba_client_reads_access_and_site(server: VendorHttpServer, accounts) -> None:
    client = AccountApiClient(server.url, AccountKind.EBA, retry=FAST)
    snap = client.fetch(EBA)
    assert snap.company_access is CompanyAccess.WRITE and snap.site is None
    assert [d.public_id for d in snap.companies[0].licenses] == ["E01-000-001", "E01-000-002"]
    accounts.add_eba_account(EBA, "Acme", ["E01-000-001"], site="Branch")
    assert client.fetch(EBA).site == "Branch"
    client.close()


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("500", AdapterUnavailable, "HTTP 500"),
        ("slow", AdapterUnavailable, "timed out"),
        ("truncated", AdapterUnavailable, "dropped the connection"),
        ("drop", AdapterUnavailable, "dropped the connection"),
        ("cut", BadPayload, "not JSON"),
        ("wrong_type", BadPayload, "bad field"),
        ("missing", BadPayload, "without the field"),
    ],
)
def test_r18_faults_become_adapter_errors_naming_the_problem(
    server: VendorHttpServer, http_accounts: HttpAccounts, kind, error, words
) -> None:
    server.fault("Search/Licenses", kind, delay=1.0)
    with pytest.raises(error, match=words):
        http_accounts.fetch(AccountKind.EMA2, MSP)


def test_r18_retries_are_bounded_and_a_transient_500_is_retried(
    server: VendorHttpServer, http_accounts: HttpAccounts
) -> None:
    server.fault("User/Current", "500", times=1)
    assert http_accounts.fetch(AccountKind.EMA2, MSP).account_type is Ema2AccountType.MSP
    server.fault("User/Current", "500")
    before = len(server.requests)
    with pytest.raises(AdapterUnavailable, match="2 attempts"):
        http_accounts.fetch(AccountKind.EMA2, MSP)
    assert sum("User/Current" in r for r in server.requests[before:]) == FAST.attempts


def test_r18_no_retry_on_4xx(server: VendorHttpServer, http_accounts: HttpAccounts) -> None:
    before = len(server.requests)
    with pytest.raises(AccountRejected):
        http_accounts.fetch(AccountKind.EBA, Credentials(EBA.username, "bad"))
    assert len(server.requests) - before == 1


@pytest.mark.parametrize("kind", ["500", "slow", "truncated", "cut", "wrong_type", "drop"])
def test_r18_a_fault_mid_page_leaves_that_account_unchanged_and_others_sync(
    make_app: AppFactory, server: VendorHttpServer, http_accounts: HttpAccounts, vendor, kind
) -> None:
    app = make_app(accounts=http_accounts)
    app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    app.connect_account(app.administrator, AccountKind.EMA2, OTHER)
    vendor.set_units("C00-000-001", 77)
    vendor.suspend("C02-000-004")
    vendor.set_units("O01-000-001", 33)
    # the second page of Company 1's licenses fails: the MSP account has read
    # page one of several companies when the fault strikes
    company1 = "Search/Licenses"
    calls = {"n": 0}
    original = server._fault_for

    def mid_page(path: str):
        if "Token/Get" in path and calls["n"] >= 5:
            server.clear_faults()  # the next account's sync meets a healthy server
        if company1 in path:
            calls["n"] += 1
            if calls["n"] == 5:  # a page in the middle of the MSP account's listings
                server.fault(company1, kind, delay=1.0)
        return original(path)

    server._fault_for = mid_page  # type: ignore[method-assign]
    before = recorded(app)
    report = app.synchronize()
    assert [f.source for f in report.failed] == [f"EMA2 account {MSP.username}"]
    assert report.changed == (PublicId("O01-000-001"),)
    assert app.license(app.administrator, "C00-000-001").units == 10
    assert app.license(app.administrator, "C02-000-004").status.level is not StatusLevel.SUSPENDED
    assert app.license(app.administrator, "O01-000-001").units == 33
    assert recorded(app) > before
    server._fault_for = original  # type: ignore[method-assign]
    server.clear_faults()
    assert set(app.synchronize().changed) == {"C00-000-001", "C02-000-004"}


def test_r17_r7_connect_over_http_imports_pools_per_company(
    make_app: AppFactory, http_accounts: HttpAccounts
) -> None:
    app = make_app(accounts=http_accounts)
    pools = app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    assert len(pools) == 3
    assert {p.name: p.tags for p in app.pools(app.administrator)} == {
        f"Company {c}": frozenset({f"Company {c}"}) for c in range(3)
    }
    assert app.synchronize().events == 0


def test_r15_activation_server_client(server: VendorHttpServer, vendor) -> None:
    client = HttpActivationServer(server.url, retry=FAST)
    key = vendor.key_of("E01-000-001")
    assert client.verify_key(LicenseKey(key)).public_id == "E01-000-001"
    other = issue(vendor, "ZZZ-000-001")
    vendor_key = LicenseKey(other)
    assert client.license_details(PublicId("ZZZ-000-001")).units == 10
    with pytest.raises(LicenseKeyRejected) as err:
        client.verify_key(LicenseKey("AAAA-BBBB-CCCC-DDDD-EEEE"))
    assert "AAAA-BBBB" not in str(err.value)
    client.report_usage(PublicId("ZZZ-000-001"), 4)
    assert vendor.details_of("ZZZ-000-001").used_units == 4
    client.deactivate_device(PublicId("ZZZ-000-001"), "agent-1", "ESET Endpoint Security")
    assert server.deactivations == [("ZZZ-000-001", "agent-1", "ESET Endpoint Security")]
    # R24: the port's call, also for a product activated outside this console
    client.deactivate(None, "agent-2", "ESET File Security")
    assert server.deactivations[-1] == (None, "agent-2", "ESET File Security")
    assert isinstance(client, ActivationServer)
    legacy = Credentials("EAV-0001", "legacy")
    vendor.add_legacy_credentials("ZZZ-000-001", legacy)
    assert client.convert_credentials(legacy) == vendor_key
    with pytest.raises(LicenseKeyRejected):
        client.convert_credentials(Credentials("EAV-0001", "nope"))
    server.fault("Licenses/", "wrong_type")
    with pytest.raises(BadPayload, match="units"):
        client.license_details(PublicId("ZZZ-000-001"))
    client.close()


def test_r15_r18_app_over_http_activation_server(
    store_env, clock, server: VendorHttpServer, vendor
) -> None:
    client = HttpActivationServer(server.url, retry=FAST)
    app = LicenseManagement(env=store_env, adapters=Adapters(activation_server=client, clock=clock))
    pid = app.add_license_key(app.administrator, vendor.key_of("E01-000-002"))
    vendor.set_units("E01-000-002", 12)
    assert app.synchronize().changed == (pid,)
    assert app.license(app.administrator, pid).units == 12
    server.fault("Licenses/", "500")
    before = recorded(app)
    vendor.set_units("E01-000-002", 13)
    report = app.synchronize()
    assert [f.source for f in report.failed] == ["license E01-000-002"]
    assert recorded(app) == before
    client.close()
    app.close()


def test_r2_no_secret_in_logs_or_errors_over_http(
    server: VendorHttpServer, http_accounts: HttpAccounts, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    server.fault("Token/Get", "500")
    with pytest.raises(AdapterUnavailable) as err:
        http_accounts.fetch(AccountKind.EMA2, MSP)
    assert MSP.reveal_password() not in str(err.value)
    assert MSP.reveal_password() not in caplog.text
