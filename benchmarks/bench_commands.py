"""Commands per second on a SQLite file, beside raw sqlite3 in the same run.

    python benchmarks/bench_commands.py [--n 2000]

Prints commands/s for ``move_pools`` and ``add_license_key`` and, beside them,
raw ``sqlite3`` doing what one command minimally needs: one SELECT
transaction and one INSERT transaction, with the settings eventsourcing uses
(WAL, synchronous=FULL). The ratio is the figure to compare (issue target:
≥ 0.5 of raw).
"""

from __future__ import annotations

import argparse
import base64
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from esmc_licensing import (
    Adapters,
    InMemoryActivationServer,
    LicenseManagement,
    ManualClock,
)

#: the data key sealing license keys at rest (R32): one per run
DATA_KEY = base64.b64encode(os.urandom(32)).decode()


def raw_sqlite(path: Path, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT, originator_version INT,"
        " topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
    )
    payload = b"x" * 300
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN")
        conn.execute(
            "SELECT * FROM stored_events WHERE originator_id = ? ORDER BY originator_version",
            (f"agg-{i % 50}",),
        ).fetchall()
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO stored_events VALUES (?, ?, ?, ?)", (f"agg-{i % 50}", i, "Topic", payload)
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def open_app(path: Path, clock: ManualClock, vendor: InMemoryActivationServer) -> LicenseManagement:
    return LicenseManagement(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path),
            "ESMC_DATA_KEY": DATA_KEY,
        },
        adapters=Adapters(activation_server=vendor, clock=clock),
    )


def bench_app(path: Path, n: int) -> tuple[float, float]:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    vendor = InMemoryActivationServer(clock=clock)
    keys = [
        vendor.issue(
            public_id=f"{i // 10000 % 1000:03d}-{i // 100 % 100:03d}-{i % 100:03d}",
            product="ESET Endpoint Security",
            units=10,
            expires=date(2027, 1, 1),
            owner=f"Owner {i % 97}",
        )
        for i in range(n)
    ]
    app = open_app(path, clock, vendor)
    admin = app.administrator
    start = time.perf_counter()
    for key in keys:
        app.add_license_key(admin, key)
    add_rate = n / (time.perf_counter() - start)

    groups = [app.create_group(admin, "Branch A"), app.create_group(admin, "Branch B")]
    pool_ids = [p.pool_id for p in app.pools(admin)]
    start = time.perf_counter()
    for i in range(n):
        app.move_pools(admin, [pool_ids[i % len(pool_ids)]], groups[(i // len(pool_ids)) % 2])
    move_rate = n / (time.perf_counter() - start)
    app.close()
    return add_rate, move_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="commands per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    raws, adds, moves = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            raws.append(raw_sqlite(Path(tmp) / f"raw{r}.db", args.n))
            add, move = bench_app(Path(tmp) / f"app{r}.db", args.n)
            adds.append(add)
            moves.append(move)
    raw, add, move = (statistics.median(x) for x in (raws, adds, moves))
    print(f"cpu count {os.cpu_count()}, n={args.n}, rounds={args.rounds} (medians)")
    print(f"raw sqlite3 SELECT txn + INSERT txn : {raw:10.0f} /s")
    print(f"add_license_key                     : {add:10.0f} /s   ratio {add / raw:.2f}")
    print(f"move_pools                          : {move:10.0f} /s   ratio {move / raw:.2f}")


if __name__ == "__main__":
    main()
