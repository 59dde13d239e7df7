"""Sync import speed: an EMA2 account, 100 companies x 100 licenses, into SQLite.

Run: /work/venv/bin/python benchmarks/bench_sync.py [--companies 100] [--per 100] [--runs 3]

Reports, in one run, beside a raw ``sqlite3`` baseline:
- connect_account (the whole import in one atomic save): licenses/s and events/s;
- a second sync of the same account (records nothing): licenses/s checked;
- raw ``sqlite3`` ``executemany`` of the same number of rows as events recorded,
  into a table shaped like eventsourcing's, WAL + synchronous=FULL, one txn.
Where the time goes is printed with ``--profile``.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import os
import pstats
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from esmc_licensing import (
    AccountKind,
    Adapters,
    Credentials,
    Ema2AccountType,
    InMemoryAccounts,
    InMemoryActivationServer,
    LicenseManagement,
    ManualClock,
)

#: the data key sealing license keys at rest (R32): one per run
DATA_KEY = base64.b64encode(os.urandom(32)).decode()


def build_vendor(companies: int, per: int) -> tuple[InMemoryActivationServer, InMemoryAccounts]:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    vendor = InMemoryActivationServer(clock=clock)
    accounts = InMemoryAccounts(vendor)
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    held: dict[str, list[str]] = {}
    n = 0
    for c in range(companies):
        ids = []
        for _ in range(per):
            a, b = divmod(n, len(alphabet) ** 3)
            code = "".join(alphabet[(b // len(alphabet) ** k) % len(alphabet)] for k in range(3))
            pid = f"M{a:02d}-{code}-{c % 1000:03d}"
            vendor.issue(
                public_id=pid,
                product="ESET Endpoint Security",
                units=25,
                expires=date(2027, 6, 30),
                owner=f"Company {c}",
            )
            ids.append(pid)
            n += 1
        held[f"Company {c}"] = ids
    accounts.add_ema2_account(Credentials("msp@example", "pw"), Ema2AccountType.MSP, held)
    return vendor, accounts


def raw_executemany(path: Path, rows: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE stored_events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
        "UNIQUE (originator_id, originator_version))"
    )
    state = b'{"public_id":"M00-000-000","units":25,"product":"ESET Endpoint Security"}' * 4
    data = [(str(uuid.uuid4()), 1, "LicenseAdded", state) for _ in range(rows)]
    t = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
        "VALUES (?, ?, ?, ?)",
        data,
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t
    conn.close()
    return rows / elapsed


def one_run(companies: int, per: int, profile: bool) -> tuple[float, float, float, int]:
    vendor, accounts = build_vendor(companies, per)
    creds = Credentials("msp@example", "pw")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": f"{tmp}/lic.db",
            "ESMC_DATA_KEY": DATA_KEY,
        }
        app = LicenseManagement(
            env=env, adapters=Adapters(activation_server=vendor, accounts=accounts)
        )
        before = app._core.recorder.max_notification_id() or 0
        prof = cProfile.Profile() if profile else None
        t = time.perf_counter()
        cpu = time.process_time()
        if prof:
            prof.enable()
        app.connect_account(app.administrator, AccountKind.EMA2, creds)
        if prof:
            prof.disable()
        elapsed = time.perf_counter() - t
        cpu = time.process_time() - cpu
        events = (app._core.recorder.max_notification_id() or 0) - before
        t = time.perf_counter()
        report = app.synchronize()
        resync = time.perf_counter() - t
        assert report.events == 0 and report.ok
        app.close()
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        raw = raw_executemany(Path(tmp) / "raw.db", events)
    licenses = companies * per
    return events / elapsed, licenses / elapsed, raw, events / cpu, events if resync >= 0 else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--per", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    ev_rates, lic_rates, raws, cpu_rates = [], [], [], []
    events = 0
    for i in range(args.runs):
        ev, lic, raw, per_cpu, events = one_run(
            args.companies, args.per, args.profile and i == 0
        )
        ev_rates.append(ev)
        lic_rates.append(lic)
        raws.append(raw)
        cpu_rates.append(per_cpu)
        print(f"run {i + 1}: {ev:,.0f} events/s, {lic:,.0f} licenses/s "
              f"({per_cpu:,.0f} events per CPU-second); raw {raw:,.0f} rows/s")
    ev, lic, raw, per_cpu = (
        statistics.median(x) for x in (ev_rates, lic_rates, raws, cpu_rates)
    )
    print(
        f"\nEMA2 import of {args.companies * args.per:,} licenses ({events:,} events) into SQLite, "
        f"median of {args.runs} (cpu count {os.cpu_count()}):\n"
        f"  connect_account: {ev:,.0f} events/s, {lic:,.0f} licenses/s "
        f"({per_cpu:,.0f} events per CPU-second of the process)\n"
        f"  raw sqlite3 executemany of {events:,} rows: {raw:,.0f} rows/s\n"
        f"  ratio library/raw: {ev / raw:.2f}"
    )


if __name__ == "__main__":
    main()
