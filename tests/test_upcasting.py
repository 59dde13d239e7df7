"""R30 across schema versions: genuinely old stored events still load."""

from __future__ import annotations

import uuid
from datetime import date

import orjson
import pytest
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent

from esmc_licensing import LicenseManagement, PublicId
from esmc_licensing.adapters.mapper import EventMapper
from esmc_licensing.domain.events import (
    CLASSES,
    LicenseAdded,
    LicenseJoinedPool,
    PoolCreated,
)
from esmc_licensing.domain.ids import license_aggregate_id, pool_id_for
from esmc_licensing.domain.values import Source

from .conftest import START, AppFactory

PID = PublicId("OLD-V01-AAA")
POOL = pool_id_for("owner:legacy corp")


def _v1_license_added(app: LicenseManagement, *, with_version_marker: bool = True) -> StoredEvent:
    """A LicenseAdded as version 1 of the schema stored it: no offline units, no subunits."""
    state = {
        "timestamp": START.isoformat(),
        "actor": f"user:{app.administrator}",
        "public_id": str(PID),
        "pool_id": str(POOL),
        "source": "LICENSE_KEY",
        "license_type": "BUSINESS",
        "product": "ESET Endpoint Security",
        "product_code": "EES",
        "units": 25,
        "expires": "2027-06-30",
        "subscription": False,
        "owner": "Legacy Corp",
        "contact": "it@legacy.example",
        "license_user": "",
        "registered": True,
        "registration_url": None,
        "suspended": False,
        "obsolete": False,
        "used_units": 3,
        "key": None,
    }
    if with_version_marker:
        state["_v"] = 1
    return StoredEvent(
        originator_id=license_aggregate_id(PID),
        originator_version=1,
        topic="LicenseAdded",
        state=orjson.dumps(state),
    )


def _pool_events(app: LicenseManagement) -> list[StoredEvent]:
    actor = f"user:{app.administrator}"
    created = PoolCreated(
        originator_id=POOL,
        originator_version=1,
        timestamp=START,
        actor=actor,
        name="Legacy Corp",
        group=app.all_group,
        source=Source.LICENSE_KEY,
    )
    joined = LicenseJoinedPool(
        originator_id=POOL, originator_version=2, timestamp=START, actor=actor, public_id=PID
    )
    return [app._core.mapper.to_stored_event(created), app._core.mapper.to_stored_event(joined)]


def test_r30_license_added_is_at_schema_version_2_with_an_upcaster_from_1() -> None:
    registration = CLASSES[LicenseAdded]
    assert registration.version == 2
    assert 1 in registration.upcasters


@pytest.mark.parametrize("with_version_marker", [True, False], ids=["v1", "no-marker"])
def test_r30_old_license_added_loads_with_zero_offline_units_and_subunits(
    make_app: AppFactory, with_version_marker: bool
) -> None:
    first = make_app()  # writes DirectoryInitialised, as the old version did too
    old = _v1_license_added(first, with_version_marker=with_version_marker)
    assert b"offline_units" not in old.state and b"subunits" not in old.state
    first._core.recorder.insert_events([*_pool_events(first), old])

    app = make_app()
    [event] = list(app._core.events.get(license_aggregate_id(PID)))
    assert isinstance(event, LicenseAdded)
    assert (event.offline_units, event.subunits) == (0, 0)
    assert event.units == 25 and event.used_units == 3 and event.expires == date(2027, 6, 30)

    view = app.license(app.administrator, PID)
    assert (view.offline_units, view.subunits) == (0, 0)
    assert view.units == 25 and view.owner == "Legacy Corp" and view.pool_id == POOL
    assert [v.public_id for v in app.licenses(app.administrator)] == [PID]
    assert [p.public_ids for p in app.pools(app.administrator)] == [(PID,)]
    assert [h.what for h in app.history(app.administrator, PID)] == [
        "LicenseJoinedPool",
        "LicenseAdded",
    ]
    # the old history is still history: the current mapper writes v2, not over v1
    assert orjson.loads(app._core.mapper.to_stored_event(event).state)["_v"] == 2
    stored = app._core.recorder.select_events(license_aggregate_id(PID))
    assert orjson.loads(stored[0].state).get("_v", 1) == 1


def test_r30_upcasting_keeps_values_a_v1_event_already_had() -> None:
    """An upcaster only adds what was missing; it never overwrites."""
    state = {"offline_units": 4, "subunits": 9, "_v": 1}
    upcast = CLASSES[LicenseAdded].upcasters[1](dict(state))
    assert (upcast["offline_units"], upcast["subunits"]) == (4, 9)


def test_r30_unknown_topic_is_a_clear_mapper_error() -> None:
    oid = uuid.uuid4()
    stored = StoredEvent(
        originator_id=oid, originator_version=7, topic="LicenseTeleported", state=b"{}"
    )
    with pytest.raises(MapperDeserialisationError) as raised:
        EventMapper().to_domain_event(stored)
    message = str(raised.value)
    assert "LicenseTeleported" in message
    assert f"{oid}#7" in message
    assert "does not know" in message


def test_r30_unknown_topic_in_a_store_is_a_clear_mapper_error(make_app: AppFactory) -> None:
    app = make_app()
    oid = uuid.uuid4()
    app._core.recorder.insert_events(
        [StoredEvent(originator_id=oid, originator_version=1, topic="FutureEvent", state=b"{}")]
    )
    again = make_app()  # opening reads no event: the views catch up at the first query
    with pytest.raises(MapperDeserialisationError, match="FutureEvent"):
        again.licenses(again.administrator)
    with pytest.raises(MapperDeserialisationError, match="FutureEvent"):
        again.catch_up()


def test_r30_unreadable_state_is_a_clear_mapper_error() -> None:
    stored = StoredEvent(
        originator_id=uuid.uuid4(), originator_version=1, topic="LicenseAdded", state=b"{not json"
    )
    with pytest.raises(MapperDeserialisationError, match="LicenseAdded"):
        EventMapper().to_domain_event(stored)
