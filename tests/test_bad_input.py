"""Bad input is refused with a LicensingError a person can act on, and records nothing.

R1 (Public ID shape), R10/R11 (groups, users, permissions), R28 (tag names),
R8a (filters), R30 (as_of), R5/R13/R19 (pool ids).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from esmc_licensing import (
    AlreadyExists,
    GroupId,
    InvalidInput,
    InvalidPublicId,
    LicenseFilter,
    LicenseManagement,
    LicensingError,
    NotFound,
    Permission,
    PoolId,
    PublicId,
    UserId,
)

from .conftest import Story, issue, recorded


def assert_human(error: LicensingError) -> None:
    """A sentence, not a Python error: no tracebacks, no bare type names only."""
    text = str(error)
    assert len(text) >= 15, text
    assert "Traceback" not in text
    assert len(text.split()) >= 4, text  # a sentence, not a bare value
    assert "object at 0x" not in text
    assert type(error).__module__.startswith("esmc_licensing")


def refused(
    app: LicenseManagement, error: type[LicensingError], act: Callable[[], object], match: str
) -> None:
    before = recorded(app)
    with pytest.raises(error, match=match) as caught:
        act()
    assert_human(caught.value)
    assert recorded(app) == before


# -- R1 Public IDs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "3AB-C12",
        "3AB-C12-D3",
        "3AB-C12-D345",
        "3ABC12D34",
        "3AB_C12_D34",
        "3AB-C12-D34-E56",
        "3AB C12 D34",
        "ÄAB-C12-D34",
        "3AB-C12-D3!",
        "X" * 500,
    ],
)
def test_r1_malformed_public_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidPublicId, match="3AB-C12-D34") as caught:
        PublicId(text)
    assert_human(caught.value)
    assert len(str(caught.value)) < 200  # a long input is not echoed in full


@pytest.mark.parametrize("value", [None, 123, 3.5, b"3AB-C12-D34", ["3AB-C12-D34"]])
def test_r1_public_id_of_the_wrong_type_is_refused(value: object) -> None:
    with pytest.raises(InvalidPublicId, match="text") as caught:
        PublicId(value)
    assert_human(caught.value)


def test_r1_public_id_is_normalised_to_upper_case() -> None:
    assert PublicId(" 3ab-c12-d34 ") == "3AB-C12-D34"
    assert str(PublicId("3ab-c12-d34")) == "3AB-C12-D34"


def test_r1_queries_refuse_malformed_public_ids(
    story: Story, app: LicenseManagement, vendor
) -> None:
    app.add_license_key(story.admin, issue(vendor, "3AB-C12-D34"))
    app.create_tag(story.admin, "T")
    for bad in ("3AB-C12", 123, None):
        refused(app, InvalidPublicId, lambda b=bad: app.license(story.admin, b), "Public ID")
        refused(app, InvalidPublicId, lambda b=bad: app.history(story.admin, b), "Public ID")
        refused(
            app, InvalidPublicId, lambda b=bad: app.assign_tag(story.admin, b, "T"), "Public ID"
        )
    assert app.license(story.admin, "3ab-c12-d34").public_id == "3AB-C12-D34"


# -- R10/R11 unknown or malformed groups, users, permissions ----------------------


def test_r10_unknown_group_is_not_found(story: Story, app: LicenseManagement) -> None:
    ghost = GroupId.derive("Atlantis")
    refused(app, NotFound, lambda: app.create_user(story.admin, "Ann", ghost), "static group")
    refused(
        app, NotFound, lambda: app.create_group(story.admin, "Sub", parent=ghost), "static group"
    )
    refused(
        app,
        NotFound,
        lambda: app.grant(story.admin, story.john, ghost, Permission.READ),
        "static group",
    )
    with pytest.raises(NotFound, match="static group"):
        app.group_named("Atlantis")


def test_r10_unknown_user_is_not_found(story: Story, app: LicenseManagement) -> None:
    ghost = UserId.derive("ghost")
    refused(
        app, NotFound, lambda: app.grant(story.admin, ghost, story.tokyo, Permission.READ), "user"
    )
    refused(app, NotFound, lambda: app.create_group(ghost, "Mine"), "user")
    refused(app, NotFound, lambda: app.pools(ghost), "user")
    refused(app, NotFound, lambda: app.filters(ghost), "user")
    with pytest.raises(NotFound, match="user"):
        app.user_named("Nobody")


@pytest.mark.parametrize("bad", ["not-a-uuid", 42, None, 3.5, b"bytes", "x" * 300])
def test_r10_malformed_ids_are_invalid_input(
    story: Story, app: LicenseManagement, bad: object
) -> None:
    refused(app, InvalidInput, lambda: app.create_user(story.admin, "Ann", bad), "GroupId.*UUID")
    if bad is not None:  # parent=None means "under All"
        refused(
            app,
            InvalidInput,
            lambda: app.create_group(story.admin, "Sub", parent=bad),
            "GroupId.*UUID",
        )
    refused(
        app,
        InvalidInput,
        lambda: app.grant(story.admin, bad, story.tokyo, Permission.READ),
        "UserId.*UUID",
    )
    refused(app, InvalidInput, lambda: app.licenses(bad), "UserId.*UUID")


@pytest.mark.parametrize("bad", ["WRITE", 3, None, "admin"])
def test_r11_a_permission_must_be_a_permission(
    story: Story, app: LicenseManagement, bad: object
) -> None:
    refused(
        app,
        InvalidInput,
        lambda: app.grant(story.admin, story.makio, story.tokyo, bad),  # type: ignore[arg-type]
        "Permission.READ, USE or WRITE",
    )


# -- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 201, "at most (200|64) characters"),  # R33 (tags: R28, 64)
        ("line\nbreak", "control"),
        (42, "text"),
        (None, "text"),
    ],
)
def test_r10_r28_bad_names_are_refused(
    story: Story, app: LicenseManagement, name: object, match: str
) -> None:
    refused(app, InvalidInput, lambda: app.create_group(story.admin, name), match)  # type: ignore[arg-type]
    refused(app, InvalidInput, lambda: app.create_user(story.admin, name, story.tokyo), match)  # type: ignore[arg-type]
    refused(app, InvalidInput, lambda: app.save_filter(story.john, name, LicenseFilter()), match)  # type: ignore[arg-type]
    tag_match = "at most 64" if match == "at most 100" else match
    refused(app, InvalidInput, lambda: app.create_tag(story.admin, name), tag_match)  # type: ignore[arg-type]


def test_r28_a_tag_name_has_at_most_64_characters(story: Story, app: LicenseManagement) -> None:
    refused(app, InvalidInput, lambda: app.create_tag(story.admin, "t" * 65), "at most 64")
    app.create_tag(story.admin, "t" * 64)
    app.create_tag(story.admin, "  padded  ")
    refused(app, AlreadyExists, lambda: app.create_tag(story.admin, "PADDED"), "(?i)padded")
    refused(app, NotFound, lambda: app.delete_tag(story.admin, "t" * 63), "tag")


def test_r10_names_at_the_limit_are_accepted_and_trimmed(
    story: Story, app: LicenseManagement
) -> None:
    g = app.create_group(story.admin, "  " + "g" * 100 + "  ")
    assert app.group_named("g" * 100) == g


# -- pool ids (R5, R13, R19) -----------------------------------------------------------


@pytest.mark.parametrize("bad", [5, None, 3.5, object()])
def test_r13_r19_pool_ids_must_be_a_list(
    story: Story, app: LicenseManagement, vendor, bad: object
) -> None:
    app.add_license_key(story.admin, issue(vendor, "3AB-C12-D34"))
    refused(app, InvalidInput, lambda: app.move_pools(story.admin, bad, story.tokyo), "pool")  # type: ignore[arg-type]
    refused(app, InvalidInput, lambda: app.remove_pools(story.admin, bad, confirm=True), "pool")  # type: ignore[arg-type]


def test_r13_r19_malformed_and_unknown_pool_ids(
    story: Story, app: LicenseManagement, vendor
) -> None:
    pid = app.add_license_key(story.admin, issue(vendor, "3AB-C12-D34"))
    real = app.license(story.admin, pid).pool_id
    refused(app, InvalidInput, lambda: app.move_pools(story.admin, [], story.tokyo), "at least one")
    refused(app, InvalidInput, lambda: app.move_pools(story.admin, ["nope"], story.tokyo), "PoolId")
    refused(app, InvalidInput, lambda: app.move_pools(story.admin, b"nope", story.tokyo), "PoolId")
    refused(
        app, InvalidInput, lambda: app.move_pools(story.admin, [real, None], story.tokyo), "PoolId"
    )
    refused(app, InvalidInput, lambda: app.move_pools(story.admin, [real], "Tokyo"), "GroupId")
    refused(
        app,
        NotFound,
        lambda: app.move_pools(story.admin, [real, PoolId.derive("x")], story.tokyo),
        "pool",
    )
    refused(
        app,
        NotFound,
        lambda: app.remove_pools(story.admin, [PoolId.derive("x")], confirm=True),
        "pool",
    )
    assert app.license(story.admin, pid).group == app.all_group


def test_r13_a_pool_id_given_as_its_string_works(
    story: Story, app: LicenseManagement, vendor
) -> None:
    pid = app.add_license_key(story.admin, issue(vendor, "3AB-C12-D34"))
    pool_id = app.license(story.admin, pid).pool_id
    app.move_pools(story.admin, str(pool_id), str(story.tokyo))
    assert app.license(story.admin, pid).group == story.tokyo


# -- filters and as_of (R8a, R30) ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(levels=["GREEN"]), "OK"),
        (dict(levels=5), "list"),
        (dict(reasons=["LATE"]), "EXPIRING"),
        (dict(types=["PIRATED"]), "BUSINESS"),
        (dict(tags=5), "list"),
        (dict(products=None), "list"),
    ],
)
def test_r8a_bad_filter_values_are_invalid_input(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as caught:
        LicenseFilter(**kwargs)  # type: ignore[arg-type]
    assert_human(caught.value)


def test_r8a_a_single_value_is_a_one_value_filter() -> None:
    assert LicenseFilter(levels="ok", tags="Hot") == LicenseFilter(levels=["OK"], tags=["Hot"])


def test_r8a_query_with_something_else_than_a_filter(story: Story, app: LicenseManagement) -> None:
    refused(app, InvalidInput, lambda: app.licenses(story.admin, "expired"), "LicenseFilter")  # type: ignore[arg-type]
    refused(app, InvalidInput, lambda: app.licenses(story.admin, LicenseFilter), "LicenseFilter")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("as_of", "match"),
    [
        ("yesterday", "datetime"),
        (datetime(2026, 1, 1), "timezone-aware"),
        (-1, "≥ 0"),
        (True, "datetime"),
    ],
)
def test_r30_bad_as_of_is_invalid_input(
    story: Story, app: LicenseManagement, as_of: object, match: str
) -> None:
    refused(app, InvalidInput, lambda: app.licenses(story.admin, as_of=as_of), match)  # type: ignore[arg-type]
    refused(app, InvalidInput, lambda: app.pools(story.admin, as_of=as_of), match)  # type: ignore[arg-type]


# -- keys (R2) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [None, 12345, b"AAAA-BBBB-CCCC-DDDD-EEEE", ["AAAA-BBBB-CCCC-DDDD-EEEE"]]
)
def test_r2_a_license_key_of_the_wrong_type_is_invalid(
    app: LicenseManagement, vendor, bad: object
) -> None:
    calls = vendor.calls
    refused(app, InvalidInput, lambda: app.add_license_key(app.administrator, bad), "license key")  # type: ignore[arg-type]
    assert vendor.calls == calls
