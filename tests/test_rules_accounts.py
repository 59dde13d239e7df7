"""Connecting accounts: R17 (EBA, EMA2, ELA), R7 (MSP pools), R12 (administrators), R2."""

from __future__ import annotations

import logging

import pytest

from esmc_licensing import (
    AccountKind,
    AccountRejected,
    AdapterUnavailable,
    CompanyAccess,
    Credentials,
    Ema2AccountType,
    InMemoryAccounts,
    InvalidInput,
    LicenseKeyRejected,
    LicenseManagement,
    NotFound,
    PermissionDenied,
    PoolIsIndivisible,
    PublicId,
    Source,
    UnsupportedAccount,
)
from esmc_licensing.projections.fold import details

from .conftest import AppFactory, Story, issue, recorded

MSP = Credentials("msp@example.com", "s3cr3t-Passw0rd")
EBA = Credentials("admin@acme.example", "eba-Passw0rd!")
ELA = Credentials("legacy-admin", "ela-Passw0rd!")


@pytest.fixture
def app(make_app: AppFactory, accounts: InMemoryAccounts) -> LicenseManagement:
    return make_app(accounts=accounts)


def msp_setup(vendor, accounts, companies=None, account_type=Ema2AccountType.MSP):
    companies = companies or {
        "Contoso": ["C01-000-001", "C01-000-002"],
        "Fabrikam": ["F01-000-001"],
    }
    for ids in companies.values():
        for pid in ids:
            issue(vendor, pid, owner="")
    accounts.add_ema2_account(MSP, account_type, companies=companies)
    return companies


# -- R17 EMA2 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "account_type",
    [Ema2AccountType.MSP, Ema2AccountType.MANAGED_MSP, Ema2AccountType.MSP_MANAGER],
)
def test_r17_r7_ema2_import_makes_one_indivisible_tagged_pool_per_company(
    app: LicenseManagement, vendor, accounts, account_type
) -> None:
    msp_setup(vendor, accounts, account_type=account_type)
    pools = app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    assert len(pools) == 2
    views = {p.name: p for p in app.pools(app.administrator)}
    assert set(views) == {"Contoso", "Fabrikam"}
    contoso = views["Contoso"]
    assert contoso.indivisible and contoso.company == "Contoso"
    assert contoso.tags == frozenset({"Contoso"})
    assert contoso.source is Source.EMA2
    assert contoso.public_ids == (PublicId("C01-000-001"), PublicId("C01-000-002"))
    assert contoso.group == app.all_group
    assert app.license(app.administrator, "C01-000-001").source is Source.EMA2


def test_r17_ema2_distributor_is_refused_and_nothing_recorded(
    app: LicenseManagement, vendor, accounts
) -> None:
    msp_setup(vendor, accounts, account_type=Ema2AccountType.DISTRIBUTOR)
    before = recorded(app)
    with pytest.raises(UnsupportedAccount, match="distributor"):
        app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    assert recorded(app) == before


def test_r17_ema2_account_that_reads_no_company_is_refused(
    app: LicenseManagement, accounts
) -> None:
    accounts.add_ema2_account(MSP, Ema2AccountType.MSP, companies={})
    before = recorded(app)
    with pytest.raises(UnsupportedAccount, match="cannot read any company"):
        app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    assert recorded(app) == before


def test_r7_a_company_without_licenses_gives_no_pool(
    app: LicenseManagement, vendor, accounts
) -> None:
    msp_setup(vendor, accounts, companies={"Contoso": ["C01-000-001"], "Empty Inc": []})
    pools = app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    assert len(pools) == 1
    assert [p.name for p in app.pools(app.administrator)] == ["Contoso"]
    assert "Empty Inc" not in app._core._tags().tags


def test_r7_company_tag_that_exists_is_reused_not_created_twice(
    app: LicenseManagement, vendor, accounts
) -> None:
    app.create_tag(app.administrator, "contoso")
    msp_setup(vendor, accounts, companies={"Contoso": ["C01-000-001"]})
    app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    (pool,) = app.pools(app.administrator)
    assert pool.tags == frozenset({"contoso"})


def test_r7_licenses_of_a_later_sync_land_in_the_pools_current_group(
    app: LicenseManagement, story: Story, vendor, accounts
) -> None:
    companies = msp_setup(vendor, accounts, companies={"Contoso": ["C01-000-001"]})
    (pool_id,) = app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    app.move_pools(app.administrator, [pool_id], story.sydney)
    issue(vendor, "C01-000-009", owner="")
    accounts.add_ema2_account(
        MSP, Ema2AccountType.MSP, companies={"Contoso": [*companies["Contoso"], "C01-000-009"]}
    )
    report = app.synchronize()
    assert report.added == (PublicId("C01-000-009"),)
    view = app.license(app.administrator, "C01-000-009")
    assert view.pool_id == pool_id and view.group == story.sydney
    assert app.license(story.larry, "C01-000-009").group == story.sydney


def test_r7_no_license_can_be_moved_out_of_an_msp_pool(
    app: LicenseManagement, story: Story, vendor, accounts
) -> None:
    msp_setup(vendor, accounts)
    app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    # pools, not licenses, are moved: the API has no per-license move; moving
    # the pool moves every license of it together (R7)
    contoso = next(p for p in app.pools(app.administrator) if p.name == "Contoso")
    app.move_pools(app.administrator, [contoso.pool_id], story.tokyo)
    groups = {app.license(app.administrator, p).group for p in contoso.public_ids}
    assert groups == {story.tokyo}
    assert PoolIsIndivisible is not None


# -- R17 EBA -------------------------------------------------------------------------------


@pytest.mark.parametrize("access", [CompanyAccess.READ, CompanyAccess.WRITE])
def test_r17_eba_read_or_write_access_imports_all_company_licenses(
    app: LicenseManagement, vendor, accounts, access
) -> None:
    for pid in ("E01-000-001", "E01-000-002", "E01-000-003"):
        issue(vendor, pid)
    accounts.add_eba_account(
        EBA, "Acme", ["E01-000-001", "E01-000-002", "E01-000-003"], company_access=access
    )
    (pool_id,) = app.connect_account(app.administrator, AccountKind.EBA, EBA)
    views = app.licenses(app.administrator)
    assert [v.public_id for v in views] == ["E01-000-001", "E01-000-002", "E01-000-003"]
    assert {v.source for v in views} == {Source.EBA}
    assert {v.pool_id for v in views} == {pool_id}
    (pool,) = app.pools(app.administrator)
    assert pool.name == "Acme" and not pool.indivisible


def test_r17_eba_no_access_imports_none(app: LicenseManagement, vendor, accounts) -> None:
    issue(vendor, "E01-000-001")
    accounts.add_eba_account(EBA, "Acme", ["E01-000-001"], company_access=CompanyAccess.NO_ACCESS)
    assert app.connect_account(app.administrator, AccountKind.EBA, EBA) == []
    assert app.licenses(app.administrator) == []
    assert app.pools(app.administrator) == []
    assert [a.username for a in app.accounts(app.administrator)] == [EBA.username]


def test_r17_eba_site_account_is_refused_with_a_clear_error(
    app: LicenseManagement, vendor, accounts
) -> None:
    issue(vendor, "E01-000-001")
    accounts.add_eba_account(EBA, "Acme", ["E01-000-001"], site="Branch office")
    before = recorded(app)
    with pytest.raises(UnsupportedAccount, match="site account"):
        app.connect_account(app.administrator, AccountKind.EBA, EBA)
    assert recorded(app) == before


def test_r17_ela_account_imports_its_licenses_into_one_pool(
    app: LicenseManagement, vendor, accounts
) -> None:
    issue(vendor, "L01-000-001")
    issue(vendor, "L01-000-002")
    accounts.add_ela_account(ELA, ["L01-000-001", "L01-000-002"])
    (pool_id,) = app.connect_account(app.administrator, AccountKind.ELA, ELA)
    assert {v.source for v in app.licenses(app.administrator)} == {Source.ELA}
    assert app.pools(app.administrator)[0].pool_id == pool_id


def test_r17_wrong_password_is_refused_and_nothing_recorded(
    app: LicenseManagement, vendor, accounts
) -> None:
    msp_setup(vendor, accounts)
    before = recorded(app)
    with pytest.raises(AccountRejected) as err:
        app.connect_account(app.administrator, AccountKind.EMA2, Credentials(MSP.username, "nope"))
    assert "nope" not in str(err.value)
    assert recorded(app) == before


def test_r17_unreachable_account_service_records_nothing(
    app: LicenseManagement, vendor, accounts
) -> None:
    msp_setup(vendor, accounts)
    accounts.fail_next()
    before = recorded(app)
    with pytest.raises(AdapterUnavailable):
        app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    assert recorded(app) == before


def test_r17_connecting_twice_records_nothing_the_second_time(
    app: LicenseManagement, vendor, accounts
) -> None:
    msp_setup(vendor, accounts)
    first = app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    before = recorded(app)
    assert app.connect_account(app.administrator, AccountKind.EMA2, MSP) == first
    assert recorded(app) == before


def test_r17_bad_arguments_are_refused_before_asking(app: LicenseManagement, accounts) -> None:
    before, calls = recorded(app), accounts.calls
    with pytest.raises(InvalidInput):
        app.connect_account(app.administrator, "NOPE", MSP)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        app.connect_account(app.administrator, AccountKind.EBA, ("u", "p"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        Credentials("", "x")
    assert (recorded(app), accounts.calls) == (before, calls)


# -- R12 ---------------------------------------------------------------------------------------


def test_r12_only_administrators_connect_and_disconnect_accounts(
    app: LicenseManagement, story: Story, vendor, accounts
) -> None:
    msp_setup(vendor, accounts)
    before, calls = recorded(app), accounts.calls
    with pytest.raises(PermissionDenied):
        app.connect_account(story.john, AccountKind.EMA2, MSP)
    assert (recorded(app), accounts.calls) == (before, calls)
    app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    before = recorded(app)
    with pytest.raises(PermissionDenied):
        app.disconnect_account(story.john, AccountKind.EMA2, MSP.username)
    with pytest.raises(PermissionDenied):
        app.synchronize(story.john)
    assert recorded(app) == before


def test_r17_disconnect_stops_sync_and_keeps_the_pools(
    app: LicenseManagement, vendor, accounts
) -> None:
    msp_setup(vendor, accounts)
    app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    app.disconnect_account(app.administrator, AccountKind.EMA2, MSP.username)
    vendor.set_units("C01-000-001", 99)
    report = app.synchronize()
    assert report.synced == () and report.failed == ()
    assert app.license(app.administrator, "C01-000-001").units == 10
    assert len(app.pools(app.administrator)) == 2
    before = recorded(app)
    with pytest.raises(NotFound):
        app.disconnect_account(app.administrator, AccountKind.EMA2, MSP.username)
    assert recorded(app) == before


# -- R2: secrets ----------------------------------------------------------------------------------


def test_r2_credentials_never_appear_in_reprs_views_history_or_logs(
    app: LicenseManagement, vendor, accounts, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    msp_setup(vendor, accounts)
    password = MSP.reveal_password()
    assert password not in repr(MSP) and password not in str(MSP)
    app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    vendor.suspend("C01-000-001")
    accounts.fail_account(MSP.username)
    report = app.synchronize()
    accounts.heal_account(MSP.username)
    app.synchronize()
    texts = [caplog.text, repr(report), repr(app.accounts(app.administrator))]
    for _, event in app._core.event_log.read(0):
        texts.append(repr(event))
        texts.append(repr(details(event)))
    for target in ("C01-000-001",):
        texts.append(repr(app.history(app.administrator, target)))
    for text in texts:
        assert password not in text


def test_r2_legacy_credentials_convert_to_a_key_through_the_activation_server(
    app: LicenseManagement, vendor
) -> None:
    key = issue(vendor, "LEG-000-001")
    legacy = Credentials("EAV-12345678", "legacy-pass")
    vendor.add_legacy_credentials("LEG-000-001", legacy)
    converted = app.convert_credentials(app.administrator, legacy)
    assert converted.reveal() == key and key not in repr(converted)
    assert app.add_legacy_credentials(app.administrator, legacy) == "LEG-000-001"
    assert app.license(app.administrator, "LEG-000-001").source is Source.LICENSE_KEY
    before = recorded(app)
    with pytest.raises(LicenseKeyRejected) as err:
        app.add_legacy_credentials(app.administrator, Credentials("EAV-12345678", "wrong-pass"))
    assert "wrong-pass" not in str(err.value)
    assert recorded(app) == before
