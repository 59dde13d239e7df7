"""The application opens, records and reopens on every store."""

from __future__ import annotations

from esmc_licensing import LicenseManagement

from .conftest import AppFactory, issue


def test_r30_reopened_store_shows_the_same_licenses(make_app: AppFactory, vendor) -> None:
    first = make_app()
    pid = first.add_license_key(first.administrator, issue(vendor, "3AB-C12-D34"))
    before = first.licenses(first.administrator)
    token = first.console_token
    second: LicenseManagement = make_app()
    assert second.console_token == token
    assert second.licenses(second.administrator) == before
    assert [v.public_id for v in before] == [pid]
