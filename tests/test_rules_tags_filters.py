"""Tags (R28) and license filters with saved presets (R8a)."""

from __future__ import annotations

from datetime import date

import pytest

from esmc_licensing import (
    AlreadyExists,
    InvalidInput,
    LicenseFilter,
    LicenseManagement,
    LicenseType,
    NotFound,
    PermissionDenied,
    PublicId,
    StatusLevel,
    StatusReason,
)

from .conftest import Story, issue, pool_of, recorded


def ids(views) -> list[str]:
    return [str(v.public_id) for v in views]


@pytest.fixture
def catalogue(story: Story, app: LicenseManagement, vendor) -> dict[str, PublicId]:
    """Five licenses with different facts; "now" is 2026-01-01.

    OK-000-001  Acme, Endpoint Security, business, fine
    EXP-000-001 Acme, Endpoint Security, expires in 10 days -> WARNING/EXPIRING
    OLD-000-001 Globex, File Security, expired -> EXPIRED
    NRG-000-001 Globex, Endpoint Antivirus, trial, not registered -> ERROR
    NFR-000-001 Initech, Mail Security, NFR, fine
    """
    admin = story.admin
    specs = [
        ("OKK-000-001", dict(owner="Acme")),
        ("EXP-000-001", dict(owner="Acme", expires=date(2026, 1, 11))),
        (
            "OLD-000-001",
            dict(owner="Globex", product="ESET File Security", expires=date(2025, 12, 1)),
        ),
        (
            "NRG-000-001",
            dict(
                owner="Globex",
                product="ESET Endpoint Antivirus",
                license_type=LicenseType.TRIAL,
                registered=False,
            ),
        ),
        (
            "NFR-000-001",
            dict(owner="Initech", product="ESET Mail Security", license_type=LicenseType.NFR),
        ),
    ]
    return {pid: app.add_license_key(admin, issue(vendor, pid, **kw)) for pid, kw in specs}  # type: ignore[arg-type]


# -- R28 tags -------------------------------------------------------------------------


def test_r28_tag_assigned_to_a_license_shows_on_that_license_only(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    admin = story.admin
    app.create_tag(admin, "Renew Q1")
    app.assign_tag(admin, catalogue["OKK-000-001"], "Renew Q1")
    assert app.license(admin, "OKK-000-001").tags == frozenset({"Renew Q1"})
    assert app.license(admin, "EXP-000-001").tags == frozenset()
    assert all(p.tags == frozenset() for p in app.pools(admin))


def test_r28_tag_on_a_pool_shows_on_the_pool_and_its_licenses(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    admin = story.admin
    app.create_tag(admin, "Acme group")
    app.assign_tag(admin, pool_of(app, "OKK-000-001"), "Acme group")
    tagged = {p.name: p.tags for p in app.pools(admin)}
    assert tagged == {
        "Acme": frozenset({"Acme group"}),
        "Globex": frozenset(),
        "Initech": frozenset(),
    }
    assert app.license(admin, "OKK-000-001").tags == frozenset({"Acme group"})
    assert app.license(admin, "EXP-000-001").tags == frozenset({"Acme group"})
    assert app.license(admin, "OLD-000-001").tags == frozenset()


def test_r28_unassigning_takes_the_tag_off(story: Story, app: LicenseManagement, catalogue) -> None:
    admin = story.admin
    app.create_tag(admin, "Hot")
    app.assign_tag(admin, "OKK-000-001", "Hot")
    app.assign_tag(admin, pool_of(app, "OLD-000-001"), "Hot")
    app.unassign_tag(admin, "OKK-000-001", "Hot")
    app.unassign_tag(admin, pool_of(app, "OLD-000-001"), "Hot")
    assert all(v.tags == frozenset() for v in app.licenses(admin))
    assert all(p.tags == frozenset() for p in app.pools(admin))


def test_r28_assigning_twice_or_unassigning_an_absent_tag_records_nothing(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    admin = story.admin
    app.create_tag(admin, "Hot")
    app.assign_tag(admin, "OKK-000-001", "Hot")
    before = recorded(app)
    app.assign_tag(admin, "OKK-000-001", "hot")
    app.unassign_tag(admin, "EXP-000-001", "Hot")
    assert recorded(app) == before


def test_r28_deleting_a_tag_unassigns_it_everywhere(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    admin = story.admin
    app.create_tag(admin, "Hot")
    app.create_tag(admin, "Cold")
    app.assign_tag(admin, "OKK-000-001", "Hot")
    app.assign_tag(admin, "OKK-000-001", "Cold")
    app.assign_tag(admin, pool_of(app, "NFR-000-001"), "Hot")
    app.delete_tag(admin, "HOT")
    assert app.license(admin, "OKK-000-001").tags == frozenset({"Cold"})
    assert app.license(admin, "NFR-000-001").tags == frozenset()
    assert all("Hot" not in p.tags for p in app.pools(admin))
    assert app.licenses(admin, LicenseFilter(tags=["Hot"])) == []
    # the name is free again, and the new tag carries nothing over
    app.create_tag(admin, "Hot")
    assert app.licenses(admin, LicenseFilter(tags=["Hot"])) == []


def test_r28_a_dry_run_tag_deletion_refuses_as_the_deletion_and_records_nothing(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    admin = story.admin
    app.create_tag(admin, "Hot")
    app.assign_tag(admin, "OKK-000-001", "Hot")
    before = recorded(app)
    with pytest.raises(PermissionDenied, match="administrator"):
        app.delete_tag(story.john, "Hot", dry_run=True)
    with pytest.raises(NotFound, match="Cold"):
        app.delete_tag(admin, "Cold", dry_run=True)
    with pytest.raises(InvalidInput, match="dry_run must be True or False"):
        app.delete_tag(admin, "Hot", dry_run=1)  # type: ignore[arg-type]
    app.delete_tag(admin, "hot", dry_run=True)
    assert recorded(app) == before
    assert app.license(admin, "OKK-000-001").tags == frozenset({"Hot"})


def test_r28_tag_names_are_unique_ignoring_case(story: Story, app: LicenseManagement) -> None:
    app.create_tag(story.admin, "Renewal")
    before = recorded(app)
    with pytest.raises(AlreadyExists, match=r"(?i)renewal"):
        app.create_tag(story.john, "RENEWAL")
    assert recorded(app) == before


def test_r28_unknown_tag_is_not_found_and_records_nothing(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    before = recorded(app)
    with pytest.raises(NotFound, match="tag"):
        app.assign_tag(story.admin, "OKK-000-001", "Nope")
    with pytest.raises(NotFound, match="tag"):
        app.delete_tag(story.admin, "Nope")
    assert recorded(app) == before


def test_r28_tagging_needs_write_on_the_objects_group(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    admin = story.admin
    app.move_pools(admin, [pool_of(app, "OKK-000-001")], story.san_diego)
    app.move_pools(admin, [pool_of(app, "OLD-000-001")], story.sydney)
    app.move_pools(admin, [pool_of(app, "NFR-000-001")], story.tokyo)
    app.create_tag(admin, "Branch")
    app.assign_tag(story.john, "OKK-000-001", "Branch")
    app.assign_tag(story.john, pool_of(app, "OKK-000-001"), "Branch")
    before = recorded(app)
    with pytest.raises(PermissionDenied, match="WRITE"):
        app.assign_tag(story.larry, "OLD-000-001", "Branch")
    with pytest.raises(PermissionDenied, match="WRITE"):
        app.assign_tag(story.makio, pool_of(app, "NFR-000-001"), "Branch")
    with pytest.raises(PermissionDenied, match="WRITE"):
        app.unassign_tag(story.makio, "NFR-000-001", "Branch")
    with pytest.raises(NotFound):
        app.assign_tag(story.john, "OLD-000-001", "Branch")
    assert recorded(app) == before
    assert app.license(admin, "OLD-000-001").tags == frozenset()
    assert app.license(story.john, "OKK-000-001").tags == frozenset({"Branch"})


def test_r28_creating_a_tag_needs_write_somewhere_and_deleting_needs_an_administrator(
    story: Story, app: LicenseManagement
) -> None:
    before = recorded(app)
    with pytest.raises(PermissionDenied, match="WRITE"):
        app.create_tag(story.makio, "Mine")
    with pytest.raises(PermissionDenied, match="WRITE"):
        app.create_tag(story.larry, "Mine")
    assert recorded(app) == before
    app.create_tag(story.john, "Mine")
    before = recorded(app)
    with pytest.raises(PermissionDenied, match="administrator"):
        app.delete_tag(story.john, "Mine")
    assert recorded(app) == before


def test_r28_removed_pool_loses_its_tags(
    story: Story, app: LicenseManagement, vendor, catalogue
) -> None:
    admin = story.admin
    app.create_tag(admin, "Acme")
    app.assign_tag(admin, pool_of(app, "OKK-000-001"), "Acme")
    app.assign_tag(admin, "OKK-000-001", "Acme")
    app.remove_pools(admin, [pool_of(app, "OKK-000-001")], confirm=True)
    app.add_license_key(admin, vendor.key_of("OKK-000-001"))
    assert app.license(admin, "OKK-000-001").tags == frozenset()
    assert app.pools(admin)[0].tags == frozenset()


# -- R8a filters ----------------------------------------------------------------------


def test_r8a_no_filter_and_empty_filter_list_everything(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    everything = sorted(catalogue)
    assert ids(app.licenses(story.admin)) == everything
    assert ids(app.licenses(story.admin, LicenseFilter())) == everything


def test_r8a_filter_by_level(story: Story, app: LicenseManagement, catalogue) -> None:
    admin = story.admin
    assert ids(app.licenses(admin, LicenseFilter(levels=[StatusLevel.OK]))) == [
        "NFR-000-001",
        "OKK-000-001",
    ]
    assert ids(app.licenses(admin, LicenseFilter(levels=[StatusLevel.WARNING]))) == ["EXP-000-001"]
    assert ids(app.licenses(admin, LicenseFilter(levels=["expired", "error"]))) == [
        "NRG-000-001",
        "OLD-000-001",
    ]


def test_r8a_filter_by_reason(story: Story, app: LicenseManagement, catalogue) -> None:
    admin = story.admin
    assert ids(app.licenses(admin, LicenseFilter(reasons=[StatusReason.EXPIRING]))) == [
        "EXP-000-001"
    ]
    assert ids(app.licenses(admin, LicenseFilter(reasons=[StatusReason.NOT_REGISTERED]))) == [
        "NRG-000-001"
    ]
    assert app.licenses(admin, LicenseFilter(reasons=[StatusReason.SUSPENDED])) == []


def test_r8a_filter_by_type_and_product(story: Story, app: LicenseManagement, catalogue) -> None:
    admin = story.admin
    assert ids(app.licenses(admin, LicenseFilter(types=[LicenseType.NFR]))) == ["NFR-000-001"]
    assert ids(app.licenses(admin, LicenseFilter(types=["trial", "nfr"]))) == [
        "NFR-000-001",
        "NRG-000-001",
    ]
    assert ids(app.licenses(admin, LicenseFilter(products=["ESET File Security"]))) == [
        "OLD-000-001"
    ]
    # product names match case-insensitively (issue 13: "eset endpoint security" matched nothing)
    assert ids(app.licenses(admin, LicenseFilter(products=["eset file SECURITY"]))) == [
        "OLD-000-001"
    ]
    assert ids(
        app.licenses(
            admin, LicenseFilter(products=["ESET Endpoint Security"], levels=[StatusLevel.OK])
        )
    ) == ["OKK-000-001"]


def test_r8a_filter_by_text_matches_public_id_product_and_owner(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    admin = story.admin
    assert ids(app.licenses(admin, LicenseFilter(text="old-000"))) == ["OLD-000-001"]
    assert ids(app.licenses(admin, LicenseFilter(text="mail"))) == ["NFR-000-001"]
    assert ids(app.licenses(admin, LicenseFilter(text="GLOBEX"))) == ["NRG-000-001", "OLD-000-001"]
    assert app.licenses(admin, LicenseFilter(text="Umbrella")) == []


def test_r8a_a_license_matches_a_tag_of_its_own_or_of_its_pool(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    admin = story.admin
    app.create_tag(admin, "Audit")
    app.assign_tag(admin, pool_of(app, "OLD-000-001"), "Audit")  # Globex pool: OLD and NRG
    app.assign_tag(admin, "NFR-000-001", "Audit")
    assert ids(app.licenses(admin, LicenseFilter(tags=["Audit"]))) == [
        "NFR-000-001",
        "NRG-000-001",
        "OLD-000-001",
    ]
    assert ids(
        app.licenses(admin, LicenseFilter(tags=["Audit"], levels=[StatusLevel.EXPIRED]))
    ) == ["OLD-000-001"]


def test_r8a_r28_a_tag_filter_ignores_case_like_tag_names(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    app.create_tag(story.admin, "Audit")
    app.assign_tag(story.admin, "NFR-000-001", "Audit")
    for spelling in ("audit", "AUDIT", "Audit"):
        assert ids(app.licenses(story.admin, LicenseFilter(tags=[spelling]))) == ["NFR-000-001"]
    assert ids(app.licenses(story.admin, LicenseFilter(tags=["audits"]))) == []


def test_r8a_filters_apply_within_what_the_user_may_see(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    admin = story.admin
    app.move_pools(admin, [pool_of(app, "OLD-000-001")], story.tokyo)
    everything_expired = LicenseFilter(levels=[StatusLevel.EXPIRED, StatusLevel.ERROR])
    assert ids(app.licenses(story.makio, everything_expired)) == ["NRG-000-001", "OLD-000-001"]
    assert app.licenses(story.john, everything_expired) == []


def test_r8a_saved_filters_belong_to_their_user(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    expiring = LicenseFilter(reasons=[StatusReason.EXPIRING])
    trials = LicenseFilter(types=[LicenseType.TRIAL])
    app.save_filter(story.john, "Expiring", expiring)
    app.save_filter(story.makio, "Trials", trials)
    assert app.filters(story.john) == {"Expiring": expiring}
    assert app.filters(story.makio) == {"Trials": trials}
    assert app.filters(story.larry) == {}
    assert app.filters(story.admin) == {}
    preset = app.filters(story.john)["Expiring"]
    assert ids(app.licenses(story.admin, preset)) == ["EXP-000-001"]


def test_r8a_saving_a_filter_again_replaces_it_and_the_same_one_records_nothing(
    story: Story, app: LicenseManagement, catalogue
) -> None:
    first = LicenseFilter(levels=[StatusLevel.OK])
    second = LicenseFilter(levels=[StatusLevel.OK], text="acme")
    app.save_filter(story.john, "Mine", first)
    before = recorded(app)
    app.save_filter(story.john, "Mine", LicenseFilter(levels=["ok"]))
    assert recorded(app) == before
    app.save_filter(story.john, "Mine", second)
    assert app.filters(story.john) == {"Mine": second}
    assert ids(app.licenses(story.admin, app.filters(story.john)["Mine"])) == ["OKK-000-001"]


def test_r8a_saved_filters_survive_reopening_the_store(make_app, vendor) -> None:
    first = make_app()
    tag_filter = LicenseFilter(
        tags=["Audit"], levels=[StatusLevel.OK, StatusLevel.WARNING], text="x"
    )
    first.save_filter(first.administrator, "Audit", tag_filter)
    second = make_app()
    assert second.filters(second.administrator) == {"Audit": tag_filter}


def test_r8a_deleting_a_saved_filter(story: Story, app: LicenseManagement) -> None:
    app.save_filter(story.john, "Mine", LicenseFilter(text="acme"))
    app.delete_filter(story.john, "Mine")
    assert app.filters(story.john) == {}
    before = recorded(app)
    with pytest.raises(NotFound, match="saved filter"):
        app.delete_filter(story.john, "Mine")
    assert recorded(app) == before


def test_r8a_bad_filters_are_refused(story: Story, app: LicenseManagement) -> None:
    with pytest.raises(InvalidInput, match="OK"):
        LicenseFilter(levels=["GREEN"])
    with pytest.raises(InvalidInput, match="EXPIRING"):
        LicenseFilter(reasons=["LATE"])
    before = recorded(app)
    with pytest.raises(InvalidInput, match="LicenseFilter"):
        app.licenses(story.admin, {"levels": ["OK"]})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="LicenseFilter"):
        app.save_filter(story.john, "Mine", "levels=OK")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="empty"):
        app.save_filter(story.john, "  ", LicenseFilter())
    assert recorded(app) == before
    assert app.filters(story.john) == {}


def test_r28_tags_filter_the_pool_list_too(story: Story, app: LicenseManagement, catalogue) -> None:
    app.create_tag(story.admin, "Renewal")
    target = pool_of(app, "OLD-000-001")
    app.assign_tag(story.admin, target, "Renewal")
    assert [p.pool_id for p in app.pools(story.admin, tags=["renewal"])] == [target]
    assert app.pools(story.admin, tags=["nothing-like-it"]) == []
    assert len(app.pools(story.admin)) > 1  # no tags: every visible pool
