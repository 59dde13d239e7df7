"""Intake by license key: R2 (the key is a secret) and R15 (verification)."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from esmc_licensing import (
    Adapters,
    AdapterUnavailable,
    InvalidLicenseKey,
    LicenseKey,
    LicenseKeyRejected,
    LicenseManagement,
    LicensingError,
    NotFound,
    PublicId,
    Source,
    StatusLevel,
    StatusReason,
    UnsupportedProduct,
)

from .conftest import Story, issue, recorded


def secret_parts(key: str) -> list[str]:
    """Forms of a key that must never be shown: whole, bare, or all but the last four."""
    bare = key.replace("-", "")
    return [key, bare, key[:-5], bare[:16], key.lower()]


def assert_no_secret(text: str, key: str) -> None:
    for part in secret_parts(key):
        assert part not in text, f"the license key leaked into: {text!r}"


# -- R15 by license key -------------------------------------------------------------


def test_r15_a_valid_key_adds_the_license_with_the_vendors_details(
    app: LicenseManagement, vendor
) -> None:
    admin = app.administrator
    key = issue(
        vendor, "3AB-C12-D34", owner="Acme", units=25, expires=date(2027, 6, 30), contact="it@acme"
    )
    pid = app.add_license_key(admin, key)
    assert pid == PublicId("3AB-C12-D34")
    view = app.license(admin, pid)
    assert (view.units, view.expires, view.owner, view.contact) == (
        25,
        date(2027, 6, 30),
        "Acme",
        "it@acme",
    )
    assert view.source is Source.LICENSE_KEY
    assert view.key_last4 == key[-4:]
    assert view.status.level is StatusLevel.OK


def test_r15_r2_key_of_wrong_shape_is_refused_before_asking_the_server(
    app: LicenseManagement, vendor
) -> None:
    good = issue(vendor, "3AB-C12-D34")
    before, calls = recorded(app), vendor.calls
    for bad in (
        good[:-1],  # 19 characters
        good + "A",  # 21 characters
        good.replace("-", ""),  # no dashes
        good.replace("-", " "),
        good[:-1] + "!",
        "",
        "    ",
        "3AB-C12-D34",  # a Public ID is not a key
    ):
        with pytest.raises(InvalidLicenseKey) as refused:
            app.add_license_key(app.administrator, bad)
        assert "license key" in str(refused.value)
        if bad.strip():
            assert bad not in str(refused.value)
    assert vendor.calls == calls
    assert recorded(app) == before
    assert app.licenses(app.administrator) == []


def test_r15_a_well_formed_key_the_server_refuses_is_rejected(
    app: LicenseManagement, vendor
) -> None:
    unknown = "ABCD-EFGH-JKLM-NPQR-STUV"
    before, calls = recorded(app), vendor.calls
    with pytest.raises(LicenseKeyRejected) as rejected:
        app.add_license_key(app.administrator, unknown)
    assert vendor.calls == calls + 1
    assert recorded(app) == before
    assert app.licenses(app.administrator) == []
    assert "STUV" in str(rejected.value)
    assert_no_secret(str(rejected.value), unknown)


def test_r15_unavailable_server_records_nothing_and_a_retry_succeeds(
    app: LicenseManagement, vendor
) -> None:
    key = issue(vendor, "3AB-C12-D34")
    before = recorded(app)
    vendor.fail_next()
    with pytest.raises(AdapterUnavailable, match="try again"):
        app.add_license_key(app.administrator, key)
    assert recorded(app) == before
    assert app.licenses(app.administrator) == []
    assert app.pools(app.administrator) == []
    assert app.add_license_key(app.administrator, key) == PublicId("3AB-C12-D34")


def test_r15_a_server_crash_becomes_adapter_unavailable(
    store_env: dict[str, str], vendor, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        clock = vendor.clock

        def verify_key(self, key: LicenseKey) -> None:
            raise ConnectionResetError("peer said " + key.reveal())

        def license_details(self, public_id: PublicId) -> None:  # pragma: no cover - unused
            raise ConnectionResetError

    app = LicenseManagement(
        env=store_env,
        adapters=Adapters(activation_server=Broken(), clock=vendor.clock),  # type: ignore[arg-type]
    )
    try:
        key = issue(vendor, "3AB-C12-D34")
        before = recorded(app)
        with caplog.at_level(logging.DEBUG), pytest.raises(AdapterUnavailable) as failed:
            app.add_license_key(app.administrator, key)
        assert "activation server" in str(failed.value)
        assert_no_secret(str(failed.value), key)
        assert_no_secret("\n".join(r.getMessage() for r in caplog.records), key)
        assert recorded(app) == before
        assert app.licenses(app.administrator) == []
    finally:
        app.close()


def test_r15_a_product_the_console_cannot_manage_is_refused(app: LicenseManagement, vendor) -> None:
    key = issue(vendor, "3AB-C12-D34", product="ESET NOD32 Antivirus Home")
    before = recorded(app)
    with pytest.raises(UnsupportedProduct, match="cannot manage") as refused:
        app.add_license_key(app.administrator, key)
    assert "3AB-C12-D34" in str(refused.value)
    assert_no_secret(str(refused.value), key)
    assert recorded(app) == before
    assert app.pools(app.administrator) == []


def test_r15_an_unregistered_license_is_added_with_its_registration_url(
    app: LicenseManagement, vendor
) -> None:
    pid = app.add_license_key(app.administrator, issue(vendor, "3AB-C12-D34", registered=False))
    status = app.license(app.administrator, pid).status
    assert status.level is StatusLevel.ERROR
    assert StatusReason.NOT_REGISTERED in status.reasons
    assert status.registration_url == vendor.details_of(pid).registration_url
    assert status.registration_url and status.registration_url.startswith("https://")


def test_r15_adding_a_license_already_present_records_nothing(
    app: LicenseManagement, vendor, caplog: pytest.LogCaptureFixture
) -> None:
    key = issue(vendor, "3AB-C12-D34")
    pid = app.add_license_key(app.administrator, key)
    before = recorded(app)
    listed = app.licenses(app.administrator)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="esmc_licensing"):
        again = app.add_license_key(app.administrator, key.lower())
    assert again == pid
    assert recorded(app) == before
    assert app.licenses(app.administrator) == listed
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("esmc_licensing")]
    assert any("already present" in m and str(pid) in m for m in messages)
    assert not any(" added " in m for m in messages), messages
    assert all(
        r.levelno == logging.INFO for r in caplog.records if "already present" in r.getMessage()
    )


def test_r15_a_key_of_an_already_removed_license_adds_it_again(
    app: LicenseManagement, vendor
) -> None:
    key = issue(vendor, "3AB-C12-D34")
    pid = app.add_license_key(app.administrator, key)
    app.remove_pools(app.administrator, [app.license(app.administrator, pid).pool_id], confirm=True)
    assert app.add_license_key(app.administrator, key) == pid
    assert [v.public_id for v in app.licenses(app.administrator)] == [pid]


def test_r15_key_with_surrounding_spaces_and_lower_case_is_the_same_key(
    app: LicenseManagement, vendor
) -> None:
    key = issue(vendor, "3AB-C12-D34")
    pid = app.add_license_key(app.administrator, f"  {key.lower()}\n")
    assert pid == PublicId("3AB-C12-D34")


# -- R2 the key is a secret ---------------------------------------------------------


def test_r2_key_never_appears_in_views_history_or_logs(
    story: Story, app: LicenseManagement, vendor, caplog: pytest.LogCaptureFixture
) -> None:
    admin = story.admin
    keys = [issue(vendor, "3AB-C12-D34"), issue(vendor, "3AB-C12-D35", registered=False)]
    with caplog.at_level(logging.DEBUG):
        pids = [app.add_license_key(admin, k) for k in keys]
        app.add_license_key(admin, keys[0])  # already present
        pool_id = app.license(admin, pids[0]).pool_id
        app.create_tag(admin, "Key holders")
        app.assign_tag(admin, pids[0], "Key holders")
        app.move_pools(admin, [pool_id], story.san_diego)
        vendor.fail_next()
        with pytest.raises(AdapterUnavailable):
            app.add_license_key(admin, issue(vendor, "3AB-C12-D36"))
    shown = [
        repr(app.licenses(admin)),
        str(app.licenses(admin)),
        repr(app.licenses(story.john)),
        repr(app.pools(admin)),
        str(app.pools(admin)),
        repr([app.license(admin, p) for p in pids]),
        repr([app.history(admin, p) for p in pids]),
        repr(app.history(admin, pool_id)),
        str([e.details for p in pids for e in app.history(admin, p)]),
        "\n".join(r.getMessage() for r in caplog.records),
        "\n".join(repr(r.args) for r in caplog.records),
    ]
    assert any(k[-4:] in repr(app.licenses(admin)) for k in keys)  # only the last four
    for text in shown:
        for k in keys:
            assert_no_secret(text, k)


def test_r2_key_never_appears_in_exception_messages(
    story: Story, app: LicenseManagement, vendor, caplog: pytest.LogCaptureFixture
) -> None:
    key = issue(vendor, "3AB-C12-D34", product="ESET Smart Security Premium")
    errors: list[LicensingError] = []
    with caplog.at_level(logging.DEBUG):
        for actor, k in (
            (story.john, key),  # not an administrator
            (story.admin, key),  # unsupported product
            (story.admin, key[:-1] + "?"),  # malformed
            (story.admin, "ZZZZ-" + key[5:]),  # rejected
        ):
            with pytest.raises(LicensingError) as refused:
                app.add_license_key(actor, k)
            errors.append(refused.value)
    for e in errors:
        assert_no_secret(str(e), key)
        assert_no_secret(repr(e), key)
        assert_no_secret(repr(e.args), key)
    assert_no_secret("\n".join(r.getMessage() for r in caplog.records), key)


def test_r2_license_key_value_shows_only_its_last_four(vendor) -> None:
    raw = issue(vendor, "3AB-C12-D34")
    key = LicenseKey(raw)
    for text in (str(key), repr(key), f"{key}", f"{key!r}"):
        assert raw[-4:] in text
        assert_no_secret(text, raw)
    assert key.reveal() == raw


def test_r2_unknown_public_id_in_a_license_query_is_not_found(app: LicenseManagement) -> None:
    with pytest.raises(NotFound, match="3AB-C12-D34"):
        app.license(app.administrator, "3ab-c12-d34")
