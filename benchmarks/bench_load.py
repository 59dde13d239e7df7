"""Loading one aggregate by id, whatever its history length: snapshot against full fold.

    python benchmarks/bench_load.py [--events 10000] [--runs 200]

Writes one computer with ``--events`` agent check-ins into a SQLite store,
then times loading it by id with an empty cache (what a command pays when
the computer is not among the recently used): once through its snapshot
and the events after it (the default, a snapshot every 100 events), once
folding its whole history (snapshots off), and, beside them in the same run,
a computer with a short history (10 events). The issue's target: a load in
about a millisecond (p50) however long the history.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from esmc_licensing import Adapters, InMemoryActivationServer, LicenseManagement, ManualClock
from esmc_licensing.domain.ids import ComputerId

#: the data key sealing license keys at rest (R32): one per run
DATA_KEY = base64.b64encode(os.urandom(32)).decode()


def timed_loads(app: LicenseManagement, cid: ComputerId, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        app._core._states.clear()  # an empty cache: the load goes to the store
        t = time.perf_counter()
        app._core._computer(cid)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    where = Path(tempfile.mkdtemp(prefix="esmc-load-"))
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(where / "s.db"),
        "ESMC_DATA_KEY": DATA_KEY,
    }
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    vendor = InMemoryActivationServer(clock=clock)
    app = LicenseManagement(env=env, adapters=Adapters(activation_server=vendor, clock=clock))
    admin = app.administrator
    long_id = app.register_computer(admin, "busy", app.all_group, fingerprint="hw-busy")
    short_id = app.register_computer(admin, "quiet", app.all_group, fingerprint="hw-quiet")
    start = clock.now()
    t = time.perf_counter()
    for i in range(args.events):
        app.computer_connected(long_id, at=start + timedelta(seconds=i))
    for i in range(9):
        app.computer_connected(short_id, at=start + timedelta(seconds=i))
    print(f"{args.events:,} check-ins of one computer written in {time.perf_counter() - t:.1f} s")
    app.close()

    for label, extra in (
        ("snapshots (default)", {}),
        ("no snapshots", {"ESMC_SNAPSHOT_EVERY": str(10**9)}),
    ):
        reader = LicenseManagement(env={**env, **extra})
        reader._core._computer(long_id)  # with snapshots on, this load writes the snapshot
        for name, cid in (
            ("short history (10 events)", short_id),
            (f"long history ({args.events + 1:,} events)", long_id),
        ):
            p50, p99 = timed_loads(reader, cid, args.runs)
            print(f"{label:20} {name:32} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
        reader._core.views.drop(snapshots=True)
        reader.close()


if __name__ == "__main__":
    main()
