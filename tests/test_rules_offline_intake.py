"""R16 through the application: offline license files are verified, then recorded."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from esmc_licensing import InvalidLicenseFile, LicenseManagement, PermissionDenied, Source

from .conftest import AppFactory, branch_story, issue


def _count(app: LicenseManagement) -> int | None:
    return app._core.recorder.max_notification_id()


def test_r16_valid_file_adds_license_to_its_owners_pool(make_app: AppFactory, vendor) -> None:
    app = make_app()
    issue(vendor, "3AB-C12-D34", owner="Acme", units=25, expires=date(2027, 3, 31))
    pid = app.add_offline_license_file(
        app.administrator, vendor.offline_file("3AB-C12-D34", app.console_token)
    )
    view = app.license(app.administrator, pid)
    assert (view.source, view.units, view.expires, view.owner) == (
        Source.OFFLINE_FILE,
        25,
        date(2027, 3, 31),
        "Acme",
    )
    assert view.key_last4 is None  # a file carries no license key
    [pool] = app.pools(app.administrator)
    assert pool.public_ids == (pid,) and pool.group == app.all_group


def test_r16_file_for_another_console_is_refused_and_nothing_recorded(
    make_app: AppFactory, vendor
) -> None:
    app = make_app()
    issue(vendor, "3AB-C12-D34")
    content = vendor.offline_file("3AB-C12-D34", "another-installation-token")
    before = _count(app)
    with pytest.raises(InvalidLicenseFile, match="another console installation"):
        app.add_offline_license_file(app.administrator, content)
    assert _count(app) == before
    assert app.licenses(app.administrator) == []


def test_r16_tampered_file_is_refused_and_nothing_recorded(make_app: AppFactory, vendor) -> None:
    app = make_app()
    issue(vendor, "3AB-C12-D34", units=5)
    content = bytearray(vendor.offline_file("3AB-C12-D34", app.console_token))
    content[len(content) // 2] ^= 0x01
    before = _count(app)
    with pytest.raises(InvalidLicenseFile):
        app.add_offline_license_file(app.administrator, bytes(content))
    assert _count(app) == before


def test_r16_expired_file_is_refused(make_app: AppFactory, vendor, clock) -> None:
    app = make_app()
    issue(vendor, "3AB-C12-D34", expires=clock.now().date() + timedelta(days=1))
    content = vendor.offline_file("3AB-C12-D34", app.console_token)
    clock.advance(timedelta(days=2))
    with pytest.raises(InvalidLicenseFile, match="expired"):
        app.add_offline_license_file(app.administrator, content)


def test_r12_branch_admin_cannot_add_offline_file(make_app: AppFactory, vendor) -> None:
    app = make_app()
    story = branch_story(app)
    issue(vendor, "3AB-C12-D34")
    content = vendor.offline_file("3AB-C12-D34", app.console_token)
    before = _count(app)
    with pytest.raises(PermissionDenied, match="administrator"):
        app.add_offline_license_file(story.john, content)
    assert _count(app) == before


def test_r15_same_file_twice_records_nothing_the_second_time(make_app: AppFactory, vendor) -> None:
    app = make_app()
    issue(vendor, "3AB-C12-D34")
    content = vendor.offline_file("3AB-C12-D34", app.console_token)
    app.add_offline_license_file(app.administrator, content)
    before = _count(app)
    assert app.add_offline_license_file(app.administrator, content) == "3AB-C12-D34"
    assert _count(app) == before
