"""The sync: R18 (only changes, idempotent, failures isolated), R27 (suspension), R6, R9, R19."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from esmc_licensing import (
    AccountKind,
    Credentials,
    Ema2AccountType,
    InMemoryAccounts,
    LicenseManagement,
    PublicId,
    StatusLevel,
    StatusReason,
)
from esmc_licensing.commands.accounts import KEY_LICENSES
from esmc_licensing.projections.fold import event_name
from esmc_licensing.queries import actor_name

from .conftest import AppFactory, issue, recorded

MSP = Credentials("msp@example.com", "s3cr3t-Passw0rd")
OTHER = Credentials("other-msp@example.com", "0ther-Passw0rd")
ELA = Credentials("legacy-admin", "ela-Passw0rd!")


@pytest.fixture
def app(make_app: AppFactory, accounts: InMemoryAccounts) -> LicenseManagement:
    return make_app(accounts=accounts)


@pytest.fixture
def connected(app: LicenseManagement, vendor, accounts) -> LicenseManagement:
    for pid in ("C01-000-001", "C01-000-002", "F01-000-001"):
        issue(vendor, pid, owner="", units=10)
    accounts.add_ema2_account(
        MSP,
        Ema2AccountType.MSP,
        companies={"Contoso": ["C01-000-001", "C01-000-002"], "Fabrikam": ["F01-000-001"]},
    )
    app.connect_account(app.administrator, AccountKind.EMA2, MSP)
    return app


def whats(app: LicenseManagement, since: int) -> list[tuple[str, str]]:
    d = app._core._directory()
    return [(event_name(e), actor_name(d, e.actor)) for _, e in app._core.event_log.read(since)]


# -- R18 ---------------------------------------------------------------------------------------


def test_r18_a_sync_with_no_vendor_change_records_nothing(connected: LicenseManagement) -> None:
    before = recorded(connected)
    report = connected.synchronize()
    assert report.ok and report.events == 0 and report.added == () and report.changed == ()
    assert recorded(connected) == before


def test_r18_sync_records_only_what_changed_and_a_second_run_records_nothing(
    connected: LicenseManagement, vendor
) -> None:
    vendor.set_units("C01-000-001", 12)
    vendor.renew("C01-000-002", date(2028, 1, 31))
    vendor.report_usage("F01-000-001", 4)
    before = recorded(connected)
    report = connected.synchronize()
    assert set(report.changed) == {"C01-000-001", "C01-000-002", "F01-000-001"}
    assert sorted(w for w, _ in whats(connected, before)) == [
        "AccountSynchronized",
        "ExpirationChanged",
        "UnitsChangedByVendor",
        "UsageReported",
    ]
    assert {a for _, a in whats(connected, before)} == {"sync"}
    view = connected.license(connected.administrator, "C01-000-001")
    assert view.units == 12
    assert connected.license(connected.administrator, "C01-000-002").expires == date(2028, 1, 31)
    assert connected.license(connected.administrator, "F01-000-001").used_units == 4
    again = recorded(connected)
    assert connected.synchronize().events == 0
    assert recorded(connected) == again


def test_r6_fewer_units_from_the_vendor_are_a_vendor_fact(
    connected: LicenseManagement, vendor
) -> None:
    vendor.set_units("C01-000-001", 3)
    before = recorded(connected)
    connected.synchronize()
    (entry,) = [
        h for h in connected.history(connected.administrator, "C01-000-001") if h.position > before
    ]
    assert entry.what == "UnitsChangedByVendor" and entry.actor == "sync"
    assert entry.details["units"] == 3 and entry.details["previous"] == 10  # typed (R29)


def test_r18_on_demand_refresh_is_recorded_as_the_administrator(
    connected: LicenseManagement, vendor
) -> None:
    vendor.set_units("C01-000-001", 11)
    before = recorded(connected)
    connected.synchronize(connected.administrator)
    assert {a for _, a in whats(connected, before)} == {"Administrator"}


def test_r18_a_failing_account_records_nothing_and_the_others_still_sync(
    connected: LicenseManagement, vendor, accounts
) -> None:
    issue(vendor, "O01-000-001", owner="")
    accounts.add_ema2_account(OTHER, Ema2AccountType.MSP, companies={"Other": ["O01-000-001"]})
    connected.connect_account(connected.administrator, AccountKind.EMA2, OTHER)
    vendor.set_units("C01-000-001", 20)
    vendor.set_units("O01-000-001", 30)
    accounts.fail_account(MSP.username)
    report = connected.synchronize()
    assert [f.source for f in report.failed] == [f"EMA2 account {MSP.username}"]
    assert "unavailable" in report.failed[0].reason
    assert report.changed == (PublicId("O01-000-001"),)
    assert connected.license(connected.administrator, "C01-000-001").units == 10
    assert connected.license(connected.administrator, "O01-000-001").units == 30
    accounts.heal_account(MSP.username)
    assert connected.synchronize().changed == (PublicId("C01-000-001"),)


def test_r18_new_licenses_of_an_account_are_added_by_the_sync(
    connected: LicenseManagement, vendor, accounts
) -> None:
    issue(vendor, "F01-000-002", owner="")
    issue(vendor, "N01-000-001", owner="")
    accounts.add_ema2_account(
        MSP,
        Ema2AccountType.MSP,
        companies={
            "Contoso": ["C01-000-001", "C01-000-002"],
            "Fabrikam": ["F01-000-001", "F01-000-002"],
            "Northwind": ["N01-000-001"],
        },
    )
    report = connected.synchronize()
    assert set(report.added) == {"F01-000-002", "N01-000-001"}
    pools = {p.name: p for p in connected.pools(connected.administrator)}
    assert "F01-000-002" in pools["Fabrikam"].public_ids
    assert pools["Northwind"].tags == frozenset({"Northwind"}) and pools["Northwind"].indivisible
    assert connected.synchronize().events == 0


def test_r18_license_key_licenses_sync_through_the_activation_server(
    app: LicenseManagement, vendor
) -> None:
    key = issue(vendor, "K01-000-001")
    app.add_license_key(app.administrator, key)
    vendor.renew("K01-000-001", date(2029, 12, 31))
    report = app.synchronize()
    assert report.source(KEY_LICENSES).changed == (PublicId("K01-000-001"),)
    assert app.license(app.administrator, "K01-000-001").expires == date(2029, 12, 31)
    before = recorded(app)
    assert app.synchronize().events == 0 and recorded(app) == before
    vendor.set_units("K01-000-001", 50)
    vendor.fail_next()
    report = app.synchronize()
    assert [f.source for f in report.failed] == ["license K01-000-001"]
    assert recorded(app) == before


def test_r18_daily_schedule_runs_what_is_due(connected: LicenseManagement, clock, vendor) -> None:
    assert connected.due_syncs() == []
    assert connected.run_due() is None
    clock.advance(timedelta(hours=23))
    assert connected.due_syncs() == []
    clock.advance(timedelta(hours=1))
    assert connected.due_syncs() == [f"EMA2 account {MSP.username}"]
    vendor.suspend("F01-000-001")
    report = connected.run_due()
    assert report is not None and report.changed == (PublicId("F01-000-001"),)
    assert connected.due_syncs() == []
    clock.advance(timedelta(days=1))
    assert connected.due_syncs(clock.now()) == [f"EMA2 account {MSP.username}"]


def test_r19_a_removed_pool_is_not_brought_back_by_the_scheduled_sync(
    connected: LicenseManagement, vendor
) -> None:
    fabrikam = next(p for p in connected.pools(connected.administrator) if p.name == "Fabrikam")
    connected.remove_pools(connected.administrator, [fabrikam.pool_id], confirm=True)
    before = recorded(connected)
    vendor.set_units("F01-000-001", 40)
    assert connected.synchronize().events == 0
    assert recorded(connected) == before
    assert "Fabrikam" not in {p.name for p in connected.pools(connected.administrator)}
    connected.connect_account(connected.administrator, AccountKind.EMA2, MSP)
    assert connected.license(connected.administrator, "F01-000-001").units == 40


def test_r9_subscription_through_an_account_keeps_its_open_validity(
    app: LicenseManagement, vendor, accounts
) -> None:
    issue(vendor, "S01-000-001", expires=None, subscription=True)
    accounts.add_ela_account(ELA, ["S01-000-001"])
    app.connect_account(app.administrator, AccountKind.ELA, ELA)
    view = app.license(app.administrator, "S01-000-001")
    assert view.subscription and view.expires is None
    vendor.renew("S01-000-001", date(2027, 3, 1))
    app.synchronize()
    assert app.license(app.administrator, "S01-000-001").expires == date(2027, 3, 1)


# -- R27 ----------------------------------------------------------------------------------------


def test_r27_vendor_suspension_seen_by_sync_shows_suspended_and_unsuspension_is_recorded(
    connected: LicenseManagement, vendor
) -> None:
    vendor.suspend("C01-000-001")
    before = recorded(connected)
    connected.synchronize()
    assert ("LicenseSuspended", "sync") in whats(connected, before)
    status = connected.license(connected.administrator, "C01-000-001").status
    assert status.level is StatusLevel.SUSPENDED and StatusReason.SUSPENDED in status.reasons
    vendor.unsuspend("C01-000-001")
    before = recorded(connected)
    connected.synchronize()
    assert ("LicenseUnsuspended", "sync") in whats(connected, before)
    assert connected.license(connected.administrator, "C01-000-001").status.level is StatusLevel.OK


def test_r27_suspension_events_reach_the_same_save_effects_hook(
    connected: LicenseManagement, vendor, monkeypatch
) -> None:
    seen: list[tuple[str, str]] = []

    def effects(events, now, actor):
        seen.extend((type(e).__name__, actor) for e in events)
        return []

    monkeypatch.setattr(connected._computer_area, "_effects_of_license_events", effects)
    vendor.suspend("F01-000-001")
    vendor.set_units("C01-000-001", 15)
    connected.synchronize()
    assert seen == [("LicenseSuspended", "sync")]
