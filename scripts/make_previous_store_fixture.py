#!/usr/bin/env python3
"""Write a store with a given version of esmc-licensing, as a text fixture.

    PYTHONPATH=/path/to/older/checkout python scripts/make_previous_store_fixture.py OUT [--sealed]

Runs a story through the public API (groups, users, grants, keys, moves, tags,
a saved filter, computers with activations and check-ins, an EMA2 account
and its sync, a removal) on a SQLite file, then writes ``OUT.events.jsonl``
(every stored event row, as eventsourcing keeps it) and ``OUT.answers.json``
(what that version's queries answered). ``tests/test_previous_store.py``
loads the rows into a new store and checks that this version answers the
same: history is forever, so a store written by an earlier version must open
and show the same facts.

``--sealed``: the store is written with ``SEAL_KEY`` and the tests' data key
(R31, R32), and its seals table is written to ``OUT.seals.jsonl`` too.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from esmc_licensing import (
    AccountKind,
    Adapters,
    Credentials,
    Ema2AccountType,
    InMemoryAccounts,
    InMemoryActivationServer,
    InMemoryAgents,
    LicenseFilter,
    LicenseManagement,
    ManualClock,
    Permission,
    StatusLevel,
)

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
#: the seal key of ``--sealed`` fixtures: for tests only (it is public in this source)
SEAL_KEY = "c2VhbCBrZXkgb2YgdGhlIHRlc3QgZml4dHVyZXMgb25seQ=="
#: the tests' data key (``esmc_licensing.testing.stores.TEST_DATA_KEY``)
DATA_KEY = "dGVzdCBkYXRhIGtleSwgbmV2ZXIgZm9yIHByb2R1Y3Q="
PRODUCT = "ESET Endpoint Security"


def story(app: LicenseManagement, vendor: InMemoryActivationServer, clock: ManualClock,
          accounts: InMemoryAccounts) -> None:
    admin = app.administrator
    sd = app.create_group(admin, "San Diego")
    syd = app.create_group(admin, "Sydney")
    john = app.create_user(admin, "John", home_group=sd)
    app.grant(admin, john, sd, Permission.WRITE)
    greta = app.create_user(admin, "Greta", home_group=syd)
    app.grant(admin, greta, syd, Permission.READ)
    keys = [
        vendor.issue(public_id="PRV-SDG-001", product=PRODUCT, units=10,
                     expires=date(2026, 12, 31), owner="Acme Corp"),
        vendor.issue(public_id="PRV-SDG-002", product="ESET Server Security", units=2,
                     expires=date(2026, 1, 20), owner="Acme Corp"),
        vendor.issue(public_id="PRV-SYD-001", product=PRODUCT, units=5,
                     expires=date(2027, 3, 1), owner="Globex"),
    ]
    pids = [app.add_license_key(admin, k) for k in keys]
    pools = {p.name: p.pool_id for p in app.pools(admin)}
    app.move_pools(admin, [pools["Acme Corp"]], sd)
    app.move_pools(admin, [pools["Globex"]], syd)
    app.create_tag(admin, "audit")
    app.assign_tag(admin, pids[0], "audit")
    app.save_filter(john, "Needs attention", LicenseFilter(levels=[StatusLevel.WARNING]))
    computers = [
        app.register_computer(john, f"sd-{i}", sd, fingerprint=f"hw-sd-{i}", products=[PRODUCT])
        for i in range(3)
    ]
    for cid in computers[:2]:
        app.run_product_activation(john, pids[0], [cid])
    for i, cid in enumerate(computers):
        clock.advance(timedelta(hours=1))
        app.computer_connected(cid, at=clock.now() - timedelta(minutes=i))
    vendor.report_usage("PRV-SYD-001", 4)
    accounts.add_ema2_account(
        Credentials("msp@example.com", "fixture-password"), Ema2AccountType.MSP,
        companies={"Contoso": [vendor.issue(public_id="PRV-MSP-001", product=PRODUCT,
                                            units=20, expires=date(2027, 6, 30),
                                            owner="Contoso")
                               and "PRV-MSP-001"]},
    )
    app.connect_account(admin, AccountKind.EMA2, Credentials("msp@example.com",
                                                             "fixture-password"))
    clock.advance(timedelta(days=1))
    app.synchronize()
    app.remove_pools(admin, [pools["Globex"]], confirm=True)
    app.deactivate_products(john, [computers[1]])


def answers(app: LicenseManagement) -> dict[str, object]:
    def plain(value: object) -> object:
        if hasattr(value, "__attrs_attrs__"):
            return {a.name: plain(getattr(value, a.name)) for a in value.__attrs_attrs__}
        if isinstance(value, (list, tuple, frozenset, set)):
            items = [plain(v) for v in value]
            return sorted(items, key=repr) if isinstance(value, (frozenset, set)) else items
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if hasattr(value, "name") and hasattr(value, "value"):  # enums
            return value.name
        return value if value is None or isinstance(value, (int, str, bool, float)) else str(value)

    out: dict[str, object] = {}
    for name in ("Administrator", "John", "Greta"):
        user = app.user_named(name)
        out[f"licenses {name}"] = plain(app.licenses(user))
        out[f"pools {name}"] = plain(app.pools(user))
        out[f"computers {name}"] = plain(app.computers(user))
    out["history PRV-SDG-001"] = plain(app.history(app.administrator, "PRV-SDG-001"))
    out["filters John"] = plain(app.filters(app.user_named("John")))
    return out


def main() -> None:
    out = Path(sys.argv[1])
    sealed = "--sealed" in sys.argv[2:]
    seals: list[tuple] = []
    with tempfile.TemporaryDirectory() as where:
        db = Path(where) / "store.db"
        clock = ManualClock(START)
        vendor = InMemoryActivationServer(clock=clock)
        accounts = InMemoryAccounts(vendor)
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)}
        if sealed:
            env.update(ESMC_SEAL_KEY=SEAL_KEY, ESMC_DATA_KEY=DATA_KEY)
        app = LicenseManagement(
            env=env,
            adapters=Adapters(activation_server=vendor, accounts=accounts,
                              agents=InMemoryAgents(), clock=clock),
        )
        story(app, vendor, clock, accounts)
        result = answers(app)
        now = clock.now()
        app.close()
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                "FROM stored_events ORDER BY rowid"
            ).fetchall()
            if sealed:
                seals = conn.execute("SELECT * FROM stored_events_seals ORDER BY seq").fetchall()
    with open(f"{out}.events.jsonl", "w", encoding="utf-8") as f:
        for rowid, oid, version, topic, state in rows:
            f.write(json.dumps({"position": rowid, "originator_id": oid,
                                "originator_version": version, "topic": topic,
                                "state": bytes(state).decode()}) + "\n")
    if sealed:
        with open(f"{out}.seals.jsonl", "w", encoding="utf-8") as f:
            for seq, first, last, positions, key_id, digests, chain in seals:
                f.write(json.dumps({"seq": seq, "first": first, "last": last,
                                    "positions": positions, "key_id": key_id,
                                    "digests": bytes(digests).hex(), "chain": chain}) + "\n")
    Path(f"{out}.answers.json").write_text(
        json.dumps({"now": now.isoformat(), "answers": result}, indent=1,
                   sort_keys=True) + "\n", encoding="utf-8",
    )
    print(f"{len(rows)} events -> {out}.events.jsonl, answers -> {out}.answers.json")


if __name__ == "__main__":
    main()
