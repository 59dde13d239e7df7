"""The runner's fast folds and cached query views agree with the domain (issue 5).

- every fast fold (usage reports, check-ins, registrations, activations,
  seats, expiration changes, licenses added and joining pools, pools created
  and moved, tags assigned) gives the views the slow path gives -- entity
  rows and audit references -- for random events of those classes
  interleaved with the events that go the slow path, with commits (so the
  runner holds entities encoded, not as dicts) at random points;
- views rebuilt from a bulk log with and without the fast paths, in one
  final transaction or in batches, are equal;
- the cached filter matcher agrees with ``LicenseFilter.matches``, and cached
  license views follow changes of the license, its pool, its tags and the day.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmc_licensing import LicenseManagement
from esmc_licensing.domain.events import (
    CLASSES,
    ComputerConnected,
    ComputerRegistered,
    DomainEvent,
    ExpirationChanged,
    LicenseAdded,
    LicenseJoinedPool,
    LicenseOverused,
    LicenseRemoved,
    PoolCreated,
    PoolMoved,
    PoolRemoved,
    ProductActivated,
    ProductDeactivated,
    SeatReleased,
    SeatTaken,
    TagAssigned,
    TagCreated,
    TagDeleted,
    TagUnassigned,
    UsageReported,
)
from esmc_licensing.domain.ids import (
    TAGS_ID,
    ComputerId,
    PoolId,
    PublicId,
    license_aggregate_id,
)
from esmc_licensing.domain.status import Status
from esmc_licensing.domain.values import LicenseType, Source, StatusLevel, StatusReason
from esmc_licensing.projections.fastpath import FAST_FOLDS
from esmc_licensing.projections.memory import filter_matcher
from esmc_licensing.projections.runner import LogSource, ViewProjector, rebuild_views
from esmc_licensing.projections.sqlite_views import SQLiteViewStore
from esmc_licensing.projections.store import MemoryViewStore
from esmc_licensing.projections.views import LicenseView
from esmc_licensing.testing import stores
from esmc_licensing.testing.bulk import generate_log
from esmc_licensing.testing.strategies import events_of, license_filters

PID = PublicId("3AB-C12-D34")
OTHER_PID = PublicId("9ZZ-000-111")
CID = ComputerId("6f1c2a4e-0d1b-5c3e-9f00-123456789abc")
OTHER_CID = ComputerId("7a2b3c4d-0d1b-5c3e-9f00-123456789abc")
POOL = PoolId("5e0d9c8b-7a6f-5e4d-8c3b-2a1f0e9d8c7b")

LICENSE_CLASSES = (LicenseAdded, UsageReported, ExpirationChanged, SeatTaken, SeatReleased,
                   LicenseOverused, LicenseRemoved)
COMPUTER_CLASSES = (ComputerRegistered, ComputerConnected, ProductActivated, ProductDeactivated)
POOL_CLASSES = (PoolCreated, LicenseJoinedPool, PoolMoved, PoolRemoved)
TAG_CLASSES = (TagCreated, TagAssigned, TagUnassigned, TagDeleted)
#: what a tag may be assigned to: our pool (also spelled in capitals), license, computer
TAG_TARGETS = (f"pool:{POOL}", f"pool:{str(POOL).upper()}", f"license:{PID}",
               f"computer:{CID}")


@st.composite
def _aimed(draw: st.DrawFn) -> DomainEvent:
    """An event of a folded class, aimed at our few licenses, computers, pool and tags."""
    cls = draw(st.sampled_from(LICENSE_CLASSES + COMPUTER_CLASSES + POOL_CLASSES + TAG_CLASSES))
    event = draw(events_of(cls))
    pid = draw(st.sampled_from((PID, PID, OTHER_PID)))
    changes: dict[str, Any] = {}
    if isinstance(event, LICENSE_CLASSES):
        changes = {"originator_id": license_aggregate_id(pid), "public_id": pid}
        if isinstance(event, SeatTaken | SeatReleased):
            changes["computer_id"] = CID if event.product < "M" else OTHER_CID
        if isinstance(event, LicenseAdded):
            changes["pool_id"] = POOL
    elif isinstance(event, COMPUTER_CLASSES):
        changes = {"originator_id": CID, "computer_id": CID}
        if isinstance(event, ProductActivated):
            changes["public_id"] = pid
    elif isinstance(event, POOL_CLASSES):
        changes = {"originator_id": POOL}
        if isinstance(event, LicenseJoinedPool):
            changes["public_id"] = pid
        if isinstance(event, PoolRemoved):
            changes["public_ids"] = (pid,)
    else:
        changes = {"originator_id": TAGS_ID, "name": draw(st.sampled_from(("urgent", "renew")))}
        if isinstance(event, TagAssigned | TagUnassigned):
            changes["target"] = draw(st.sampled_from(TAG_TARGETS))
    return attrs.evolve(event, **changes)


def _project(
    app: LicenseManagement,
    events: list[DomainEvent],
    commits: set[int],
    *,
    fast: bool,
    start: int = 1,
) -> Any:
    """The views of these events, committed after the positions in ``commits`` and at the end.

    The first event is at log position ``start``.
    """
    views = MemoryViewStore()
    projector = ViewProjector(views, app.name, fast=fast)
    source = LogSource(app)
    versions: dict[Any, int] = {}
    for position, drawn in enumerate(events, start=start):
        version = versions[drawn.originator_id] = versions.get(drawn.originator_id, 0) + 1
        event = attrs.evolve(drawn, originator_version=version)
        topic, state = app.mapper.encode_state(event)
        projector.apply_row(
            (position, str(event.originator_id), version, topic, state), source
        )
        if position in commits:
            assert projector.commit()
    projector.commit()
    return views.dump()


@settings(max_examples=300)
@given(
    events=st.lists(_aimed(), min_size=1, max_size=20),
    commits=st.sets(st.integers(min_value=1, max_value=20), max_size=4),
)
def test_r30_fast_folds_agree_with_the_domain_evolve(
    events: list[DomainEvent], commits: set[int]
) -> None:
    app = LicenseManagement()
    try:
        fast = _project(app, events, commits, fast=True)
        assert fast == _project(app, events, commits, fast=False)
        # committing or not in between changes nothing either
        assert fast == _project(app, events, set(), fast=True)
    finally:
        app.close()


@settings(max_examples=50)
@given(
    events=st.lists(_aimed(), min_size=2, max_size=12),
    commits=st.sets(st.integers(min_value=2**32 - 6, max_value=2**32 + 6), max_size=3),
)
def test_r30_references_past_four_byte_positions_are_all_kept(
    events: list[DomainEvent], commits: set[int]
) -> None:
    """The runner holds positions as 4-byte ints until the log passes 2**32 - 1,
    then widens every reference array, its own and the licenses' and computers'."""
    app = LicenseManagement()
    try:
        start = 2**32 - len(events) // 2
        fast = _project(app, events, commits, fast=True, start=start)
        assert fast == _project(app, events, commits, fast=False, start=start)
        assert max(row.position for row in fast["audit"]) >= 2**32
    finally:
        app.close()


def test_r30_the_split_audit_index_reads_as_one_index_by_target_name() -> None:
    from array import array

    from esmc_licensing.projections.store import SplitAuditIndex, sorted_audit_items

    rest = {"pool:p": array("I", [3]), "tag:t": array("I", [2, 5]), "account:a": array("I", [1])}
    licenses = {"9ZZ-000-111": array("I", [4]), "3AB-C12-D34": array("I", [1, 6])}
    computers = {"6f1c": array("I", [7])}
    index = SplitAuditIndex(rest, {"license:": licenses, "computer:": computers})
    flat = {
        **rest,
        **{"license:" + k: v for k, v in licenses.items()},
        **{"computer:" + k: v for k, v in computers.items()},
    }
    assert list(index) == sorted(flat)
    assert [(t, list(p)) for t, p in sorted_audit_items(index)] == [
        (t, list(flat[t])) for t in sorted(flat)
    ]
    assert len(index) == len(flat)
    assert all(list(index[t]) == list(flat[t]) for t in flat)
    assert "license:nope" not in index and "directory" not in index


@st.composite
def _entity_json(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A license's or computer's unstructured state with hostile strings: quotes,
    backslashes, non-ASCII, the column's own name as text and as a nested key."""
    from esmc_licensing.projections.fastpath import _COMPUTER, _LICENSE

    text = st.one_of(
        st.text(max_size=12),
        st.sampled_from(['"', "\\", "\n", ',"group":"x"', ',"pool_id":"y"', "é", "null"]),
    )
    d = dict(_LICENSE if kind == "license" else _COMPUTER)
    column = "pool_id" if kind == "license" else "group"
    for field in ("name", "owner", "product", "contact", "fingerprint"):
        if field in d:
            d[field] = draw(text)
    d[column] = draw(st.none() | text | st.uuids().map(str))
    if kind == "computer":
        d["products"] = {draw(text): {"public_id": None, "activated": True,
                                      "suspended": False}}
        d["products"]["group"] = {"public_id": draw(text), "activated": False,
                                  "suspended": False}
    return d


@given(kind=st.sampled_from(["license", "computer"]), data=st.data())
def test_r30_columns_read_from_the_json_text_agree_with_the_parsed_state(
    kind: str, data: st.DataObject
) -> None:
    import orjson

    from esmc_licensing.projections.store import _MISSING, RAW_COLUMNS, TEXT_COLUMNS

    d = data.draw(_entity_json(kind))
    found = TEXT_COLUMNS[kind](orjson.dumps(d))
    expected = RAW_COLUMNS[kind](d)
    if _MISSING not in found:  # otherwise the caller parses the JSON
        assert found == expected
    if b"\\" not in orjson.dumps(expected):
        assert found == expected  # only text written with escapes needs the parse


def test_r30_every_fast_fold_is_exercised_by_the_property() -> None:
    folded = {
        CLASSES[c].topic
        for c in (*LICENSE_CLASSES, *COMPUTER_CLASSES, *POOL_CLASSES, *TAG_CLASSES)
    }
    assert set(FAST_FOLDS) <= folded


def test_r30_views_rebuilt_with_and_without_fast_paths_are_equal(tmp_path: Path) -> None:
    env = stores.sqlite_env(tmp_path / "events.db")
    app = LicenseManagement(env=env)
    generate_log(app, events=6_000, licenses=300, computers=600)
    total = app.recorder.max_notification_id()
    app.close()
    opened = {
        name: SQLiteViewStore(tmp_path / f"{name}.db") for name in ("fast", "slow", "fast-batches")
    }
    memory = MemoryViewStore()
    try:
        rebuild_views(env, opened["fast"])  # one transaction at the end
        rebuild_views(env, opened["slow"], fast=False)
        rebuild_views(env, opened["fast-batches"], commit_every=700)
        rebuild_views(env, memory)
        expected = opened["slow"].dump()
        assert expected["position"] == total
        for store in (*opened.values(), memory):
            assert store.dump() == expected
    finally:
        for store in opened.values():
            store.close()


def test_r30_a_rebuild_holding_few_dicts_and_patches_equals_one_holding_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entities re-encoded and patches merged every few changes (what a long
    rebuild does to bound its memory) give the views of the slow path."""
    from esmc_licensing.projections import fastpath
    from esmc_licensing.projections.store import CodecDict

    env = stores.sqlite_env(tmp_path / "events.db")
    app = LicenseManagement(env=env)
    generate_log(app, events=3_000, licenses=120, computers=300)
    app.close()
    slow, fast = MemoryViewStore(), MemoryViewStore()
    rebuild_views(env, slow, fast=False)
    monkeypatch.setattr(CodecDict, "max_dicts", 3)
    monkeypatch.setattr(CodecDict, "max_patches", 5)
    monkeypatch.setattr(fastpath, "_MAX_PENDING_SEATS", 1)
    rebuild_views(env, fast)
    assert fast.dump() == slow.dump()


# -- queries: the filter matcher and the view cache ------------------------------------------


@st.composite
def _views(draw: st.DrawFn) -> LicenseView:
    return LicenseView(
        public_id=PID,
        pool_id=draw(st.uuids()),  # type: ignore[arg-type]
        group=draw(st.uuids()),  # type: ignore[arg-type]
        license_type=draw(st.sampled_from(LicenseType)),
        product=draw(st.sampled_from(["ESET Server Security", "ESET Endpoint Security", "ß"])),
        units=1,
        used_units=1,
        offline_units=0,
        subunits=0,
        expires=None,
        subscription=False,
        owner=draw(st.sampled_from(["Acme", "acme server", "STRASSE", ""])),
        contact="",
        source=Source.LICENSE_KEY,
        tags=frozenset(draw(st.lists(st.sampled_from(["urgent", "renew", "branch"])))),
        status=Status(
            level=draw(st.sampled_from(StatusLevel)),
            reasons=frozenset(draw(st.lists(st.sampled_from(StatusReason)))),
        ),
    )


@given(view=_views(), f=license_filters())
def test_r8a_the_cached_filter_matcher_agrees_with_license_filter_matches(
    view: LicenseView, f: Any
) -> None:
    folded = (view.public_id.casefold(), view.product.casefold(), view.owner.casefold())
    expected = f.matches(
        level=view.status.level,
        reasons=view.status.reasons,
        tags=view.tags,
        license_type=view.license_type,
        product=view.product,
        public_id=view.public_id,
        owner=view.owner,
    )
    assert filter_matcher(f)(view, folded) == expected


def test_r8_cached_license_views_follow_the_day_and_the_license(tmp_path: Path) -> None:
    env = stores.sqlite_env(tmp_path / "events.db")
    app = LicenseManagement(env=env)
    generate_log(app, events=2_000, licenses=50, computers=50)
    admin = app.administrator
    first = app.licenses(admin)
    assert app.licenses(admin) == first
    model = app._catch_up()
    lic = next(v for v in first)
    later = model.licenses_for(admin, None, date(2030, 1, 1), app.policy)
    again = model.licenses_for(admin, None, date(2030, 1, 1), app.policy)
    assert later is not again and later == again
    by_id = {v.public_id: v for v in later}
    # the same facts, another day: statuses recomputed, not served stale
    fresh = model.license_view(model.licenses[lic.public_id], date(2030, 1, 1), app.policy)
    assert by_id[lic.public_id] == fresh
    assert [v.public_id for v in later] == [v.public_id for v in first]
    expires = date(2026, 1, 1) + timedelta(days=5)
    assert all(v.status == model.license_view(model.licenses[v.public_id],
                                              expires, app.policy).status
               for v in model.licenses_for(admin, None, expires, app.policy))
    app.close()
