"""One client task on many computers: time and memory of the one command.

    python benchmarks/bench_wide_task.py [--computers 2000 4000 10000]

For each count, in a fresh process: a SQLite store, one license with that
many units, that many computers with the product installed, then one
``run_product_activation`` on all of them (``InMemoryAgents`` report every
target's success at once: a seat, a result and an activation each). Prints
the command's wall time and the process's peak RSS before and after it.
Memory and time should grow linearly with the computers: a decision used to
keep every intermediate state of the license (a seat set per seat taken)
and of the task (a target map per result), 1 GB for 4,000 computers.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

PRODUCT = "ESET Endpoint Security"


def one(n: int) -> None:
    from esmc_licensing import (
        Adapters,
        InMemoryActivationServer,
        InMemoryAgents,
        LicenseManagement,
        ManualClock,
    )

    with tempfile.TemporaryDirectory() as folder:
        clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
        vendor = InMemoryActivationServer(clock=clock)
        app = LicenseManagement(
            env={
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(Path(folder) / "store.db"),
                "ESMC_DATA_KEY": base64.b64encode(os.urandom(32)).decode(),
            },
            adapters=Adapters(activation_server=vendor, clock=clock, agents=InMemoryAgents()),
        )
        admin = app.administrator
        pid = app.add_license_key(admin, vendor.issue(
            public_id="WID-000-001", product=PRODUCT, units=n, expires=date(2027, 1, 1),
            owner="Wide"))
        computers = [
            app.register_computer(admin, f"pc-{i}", app.all_group, fingerprint=f"hw-{i}",
                                  products=[PRODUCT])
            for i in range(n)
        ]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        app.run_product_activation(admin, pid, computers)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert app.license(admin, pid).used_units == n
        app.close()
    print(f"{n:>7,} computers: {elapsed:6.2f} s, peak RSS {before / 1024:.0f} -> "
          f"{after / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--computers", type=int, nargs="+", default=[2000, 4000, 10000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one)
        return
    for n in args.computers:  # a process each: peak RSS is per process
        subprocess.run([sys.executable, __file__, "--one", str(n)], check=True)


if __name__ == "__main__":
    main()
