"""R29, R31: the whole audit log, streamed in log order, for auditors only."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from esmc_licensing import LicenseManagement, ManualClock, Permission, PermissionDenied

from .conftest import Story, issue, recorded


def test_r29_audit_log_streams_every_event_in_log_order(
    story: Story, app: LicenseManagement, vendor, clock: ManualClock
) -> None:
    pid = app.add_license_key(story.admin, issue(vendor, "3AB-C12-D34"))
    clock.advance(timedelta(days=1))
    middle = clock.now()
    app.move_pools(story.admin, [app.license(story.admin, pid).pool_id], story.sydney)
    entries = list(app.audit_log(story.admin))
    assert [e.position for e in entries] == list(range(1, recorded(app) + 1))
    moved = next(e for e in entries if e.what == "PoolMoved")
    assert moved.details["to_group_name"] == "Sydney" and moved.target.startswith("pool:")
    assert [e.what for e in app.audit_log(story.admin, since=middle)] == ["PoolMoved"]
    assert [e.position for e in app.audit_log(story.admin, since=2, until=3)] == [2, 3]
    assert all(e.when < middle for e in app.audit_log(story.admin, until=middle - timedelta(1)))
    json.dumps([dict(e.details) for e in entries])  # JSON-typed, every one


def test_r31_only_an_administrator_or_read_on_all_exports(
    story: Story, app: LicenseManagement
) -> None:
    with pytest.raises(PermissionDenied, match="READ on All"):
        app.audit_log(story.john)  # refused at once, before anything is read
    auditor = app.create_user(story.admin, "Auditor", app.all_group)
    app.grant(story.admin, auditor, app.all_group, Permission.READ)
    assert next(iter(app.audit_log(auditor))).position == 1
