"""R33: names of groups, users, tags, filters and computers are normalised and
refused when they could hide text, pose as another name or rewrite a terminal;
names stored before the rule stay readable.

The property draws names and payload strings (products, fingerprints) from the
whole Unicode range, control, format, bidirectional and surrogate characters
included: every command either records a valid name or raises ``InvalidInput``
(or ``AlreadyExists``) and records nothing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esmc_licensing import (
    AlreadyExists,
    InvalidInput,
    LicenseFilter,
    LicenseManagement,
    NotFound,
    Permission,
)
from esmc_licensing.domain.events import Emitter, GroupCreated, TagCreated, UserCreated
from esmc_licensing.domain.ids import DIRECTORY_ID, TAGS_ID, GroupId, UserId
from esmc_licensing.domain.values import check_name, escape_controls

from .conftest import PRODUCT, AppFactory, Story, branch_story, recorded

# -- what a valid name is, written independently of the code under test ----------------

REFUSED = {"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"}
LOOKALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def _letter_scripts(word: str) -> set[str]:
    return {
        s
        for c in word
        if unicodedata.category(c).startswith("L")
        for s in LOOKALIKE_SCRIPTS
        if unicodedata.name(c, "").startswith(s + " ")
    }


def valid_payload(text: str) -> bool:
    return (
        text == unicodedata.normalize("NFC", text)
        and text == text.strip()
        and 1 <= len(text) <= 200
        and not any(unicodedata.category(c) in REFUSED for c in text)
    )


def valid_name(text: str) -> bool:
    """Valid, and no word (a run of letters and marks) mixes look-alike scripts."""
    runs = "".join(c if unicodedata.category(c)[0] in "LM" else " " for c in text)
    return valid_payload(text) and all(len(_letter_scripts(w)) <= 1 for w in runs.split())


# -- stories --------------------------------------------------------------------------


def refused(app: LicenseManagement, act: Callable[[], object], match: str) -> None:
    before = recorded(app)
    with pytest.raises(InvalidInput, match=match) as caught:
        act()
    assert recorded(app) == before
    assert "\x1b" not in str(caught.value) and "\u202e" not in str(caught.value)


@pytest.mark.parametrize("name", ["All", "all", "  ALL ", "A\u200bll"])
def test_r33_group_named_all_is_refused(app: LicenseManagement, name: str) -> None:
    admin = app.administrator
    refused(app, lambda: app.create_group(admin, name), "All|format")
    sd = app.create_group(admin, "San Diego")
    refused(app, lambda: app.create_group(admin, name, sd), "All|format")
    # "All" still means the one root group
    assert app.group_named("All") == app.all_group


def test_r33_user_name_mixing_cyrillic_and_latin_is_refused(app: LicenseManagement) -> None:
    admin = app.administrator
    refused(app, lambda: app.create_user(admin, "\u0410dministrator", app.all_group), "Cyrillic")
    refused(app, lambda: app.create_group(admin, "P\u0430yroll"), "Cyrillic and Latin")
    refused(app, lambda: app.create_tag(admin, "\u03bfffice"), "Greek and Latin")
    # one script per word is a name like any other
    for name in ("Администратор", "Αθήνα", "Tokyo 東京", "Zürich", "PC-Москва", "Office_Αθήνα"):
        app.create_group(admin, name)
        assert app.group_name(app.group_named(name)) == name


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("John\u200b", "U+200B ZERO WIDTH SPACE"),
        ("\u202eevil", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\x1b[2J\x1b[31mFAKE", "U+001B"),
        ("a\u2028b", "U+2028 LINE SEPARATOR"),
        ("\ufeffBOM", "U+FEFF"),
        ("tab\there", "U+0009"),
        ("lone \ud800", "U+D800"),
    ],
)
def test_r33_control_format_and_bidi_characters_are_refused_everywhere(
    app: LicenseManagement, name: str, shown: str
) -> None:
    admin = app.administrator
    sd = app.create_group(admin, "San Diego")
    for act in (
        lambda: app.create_group(admin, name),
        lambda: app.create_user(admin, name, sd),
        lambda: app.create_tag(admin, name),
        lambda: app.save_filter(admin, name, LicenseFilter()),
        lambda: app.register_computer(admin, name, sd, fingerprint="fp-1", products=[PRODUCT]),
        lambda: app.register_computer(admin, "pc", sd, fingerprint=name, products=[PRODUCT]),
        lambda: app.register_computer(admin, "pc", sd, fingerprint="fp-1", products=[name]),
    ):
        refused(app, act, shown.replace("+", r"\+"))


def test_r33_names_are_nfc_trimmed_and_at_most_200_characters(app: LicenseManagement) -> None:
    admin = app.administrator
    decomposed = "  Cafe\u0301 Paris \n"
    gid = app.create_group(admin, decomposed)
    assert app.group_name(gid) == "Café Paris"
    # the same name composed or decomposed is the same group
    assert app.group_named("Café Paris") == gid == app.group_named("Cafe\u0301 Paris")
    with pytest.raises(AlreadyExists):
        app.create_group(admin, "CAFÉ PARIS")
    app.create_group(admin, "x" * 200)
    refused(app, lambda: app.create_group(admin, "y" * 201), "at most 200")
    refused(app, lambda: app.create_user(admin, "\u200b", gid), "format")
    refused(app, lambda: app.create_user(admin, " \t ", gid), "empty")


# -- the property ------------------------------------------------------------------------

NASTY = [
    "\x00", "\x1b", "\x7f", "\x85", "\t", "\n", "\r", "\u00ad", "\u061c", "\u200b",
    "\u200d", "\u200e", "\u202a", "\u202e", "\u2066", "\u2069", "\u2028", "\u2029",
    "\ufeff", "\ufff9", "\U000e0001", "\ud800", "\udfff", "\u0378", "\U0010ffff",
    "\u0301", " ", "\u00a0", "\u3000", "А", "а", "Ο", "o", "a", "A", "東", "é", "e",
]  # fmt: skip

texts = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=()),  # the whole range, surrogates included
        st.sampled_from(NASTY),
    ),
    max_size=12,
) | st.sampled_from(["All", "x" * 201, " John ", "Аdministrator"])


COMMANDS = ["group", "user", "tag", "filter", "computer", "fingerprint", "product"]


@given(command=st.sampled_from(COMMANDS), text=texts)
def test_r33_every_command_records_a_valid_name_or_raises_invalid_input(
    app: LicenseManagement, command: str, text: str
) -> None:
    admin = app.administrator
    home = app.all_group
    fingerprint = f"fp-{text.encode('utf-8', 'surrogatepass').hex()}"
    acts: dict[str, Callable[[], object]] = {
        "group": lambda: app.create_group(admin, text),
        "user": lambda: app.create_user(admin, text, home),
        "tag": lambda: app.create_tag(admin, text),
        "filter": lambda: app.save_filter(admin, text, LicenseFilter()),
        "computer": lambda: app.register_computer(
            admin, text, home, fingerprint=fingerprint, products=[PRODUCT]
        ),
        "fingerprint": lambda: app.register_computer(admin, "pc", home, fingerprint=text),
        "product": lambda: app.register_computer(
            admin, "pc", home, fingerprint=fingerprint, products=[text]
        ),
    }
    before = recorded(app)
    try:
        acts[command]()
    except (InvalidInput, AlreadyExists):
        assert recorded(app) == before
        return
    after = recorded(app)
    for _, event in app._core.event_log.read(before, after):
        name = getattr(event, "name", None)
        if name is not None:
            assert valid_name(name), ascii(name)
        fp = getattr(event, "fingerprint", None)
        if fp is not None:
            assert valid_payload(fp), ascii(fp)
        for product in getattr(event, "products", ()):
            assert valid_payload(product), ascii(product)


@given(text=texts)
def test_r33_check_name_refuses_exactly_the_names_the_rule_refuses(text: str) -> None:
    normalised = unicodedata.normalize("NFC", text).strip()
    try:
        name = check_name("group", text)
    except InvalidInput as e:
        assert not valid_name(normalised)
        assert not any(unicodedata.category(c) in REFUSED for c in str(e))
        return
    assert name == normalised and valid_name(name)


@given(text=st.text(alphabet=st.characters(exclude_categories=())))
def test_r33_escaped_text_holds_no_control_format_or_bidi_character(text: str) -> None:
    shown = escape_controls(text)
    assert not any(unicodedata.category(c) in REFUSED | {"Co"} for c in shown)
    if not any(unicodedata.category(c) in REFUSED | {"Co"} for c in text):
        assert shown == text  # nothing else is touched
    else:
        assert "\\" in shown


# -- history is forever: names stored before R33 ----------------------------------------

OLD_GROUP = "\u202eevil\x1b[31m"
OLD_USER = "John\u200b"
OLD_TAG = "t\u200bag"


def _store_old_names(app: LicenseManagement) -> tuple[GroupId, UserId]:
    """What an earlier version could record, saved as its events were."""
    d = app._core._directory()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    group = GroupId.derive("old-group")
    user = UserId.derive("old-user")
    emit = Emitter(DIRECTORY_ID, d.version, now, "system")
    emit(GroupCreated, group=group, name=OLD_GROUP, parent=app.all_group)
    emit(UserCreated, user=user, name=OLD_USER, home_group=group)
    tags = Emitter(TAGS_ID, app._core._tags().version, now, "system")
    tags(TagCreated, name=OLD_TAG)
    app._core._save_events([*emit.events, *tags.events])
    return group, user


def test_r33_a_store_with_names_now_refused_still_opens_and_reads(make_app: AppFactory) -> None:
    first = make_app()
    group, user = _store_old_names(first)
    app = make_app()
    admin = app.administrator
    assert app.group_name(group) == OLD_GROUP
    assert app.user_named(OLD_USER) == user
    assert app.group_named(OLD_GROUP) == group
    app.grant(admin, user, group, Permission.READ)
    assert app.licenses(user) == []
    # an old object can still be used and removed by its name
    sub = app.create_group(admin, "Below", group)
    assert app.group_name(sub) == "Below"
    app.delete_tag(admin, OLD_TAG)
    with pytest.raises(NotFound):
        app.delete_tag(admin, OLD_TAG)
    # new objects cannot take such names
    with pytest.raises(InvalidInput):
        app.create_group(admin, OLD_GROUP)


def test_r33_story_names_are_kept_as_given(app: LicenseManagement) -> None:
    story: Story = branch_story(app)
    assert app.group_name(story.san_diego) == "San Diego"
    assert app.user_named("john") == story.john
