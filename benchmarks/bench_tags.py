"""A tag on many objects (R28): does one more assignment cost more the more it has?

    python benchmarks/bench_tags.py [--objects 10000] [--store sqlite|memory|postgres]

Registers ``--objects`` computers, tags each with the same tag (one command
each), then deletes the tag (one command unassigning it everywhere). Prints
the µs per assignment over the first and the last 500 assignments -- equal
when an assignment costs what it touches, growing when the tag's targets are
copied at each one -- and the time of the delete. Beside them, in the same
run, a raw ``sqlite3`` baseline of the same number of single-row INSERT
transactions.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
import time
from pathlib import Path

from esmc_licensing import LicenseManagement
from esmc_licensing.testing import stores

WINDOW = 500


def raw_inserts(path: Path, n: int) -> float:
    """µs per one-row INSERT transaction (WAL, synchronous=FULL, as eventsourcing)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, target TEXT)")
    start = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO t (target) VALUES (?)", (f"computer:{i}",))
        con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--store", choices=("sqlite", "memory", "postgres"), default="sqlite")
    args = parser.parse_args()
    n = max(args.objects, 2 * WINDOW)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.store == "postgres":
            env = stores.postgres_env(stack.enter_context(stores.postgres_schema()))
        elif args.store == "sqlite":
            env = stores.sqlite_env(Path(tmp) / "tags.db")
        else:
            env = stores.memory_env()
        app = LicenseManagement(env=env)
        admin, group = app.administrator, app.all_group
        computers = [
            app.register_computer(admin, f"pc-{i}", group, fingerprint=f"hw-{i}")
            for i in range(n)
        ]
        app.create_tag(admin, "Fleet")
        per: list[float] = []
        for c in computers:
            start = time.perf_counter()
            app.assign_tag(admin, c, "Fleet")
            per.append(time.perf_counter() - start)
        start = time.perf_counter()
        app.delete_tag(admin, "Fleet")
        deleted = time.perf_counter() - start
        assert app.tags(admin) == []
        app.close()
        raw = raw_inserts(Path(tmp) / "raw.db", WINDOW) if args.store != "memory" else None
    first = sum(per[:WINDOW]) / WINDOW * 1e6
    last = sum(per[-WINDOW:]) / WINDOW * 1e6
    print(f"{n:,} computers tagged with one tag ({args.store}), one command each:")
    print(f"  µs per assignment: first {WINDOW} {first:.0f}, last {WINDOW} {last:.0f} "
          f"(last/first {last / first:.2f}; 1.00 when it costs what it touches)")
    if raw is not None:  # the same on PostgreSQL: a yardstick of this machine's disk
        print(f"  raw sqlite3 one-row INSERT transaction: {raw:.0f} µs "
              f"(first assignments / raw = {raw / first:.2f})")
    print(f"  delete_tag (unassigning it from all {n:,} in one command): {deleted:.2f} s")


if __name__ == "__main__":
    main()
