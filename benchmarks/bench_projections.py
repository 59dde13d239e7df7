"""Rebuild speed, rebuild memory and query latency of the views.

    /work/venv/bin/python benchmarks/bench_projections.py               # 1,000,000 events
    /work/venv/bin/python benchmarks/bench_projections.py --events 100000
    /work/venv/bin/python benchmarks/bench_projections.py --dir /tmp/bench1m --reuse

``--dir`` keeps the files there; every ``*.db`` in it is deleted first and the
log generated again (about 25 s for 1,000,000 events), unless ``--reuse`` is
given and ``DIR/events.db`` exists: that log is then kept as it is (its size
is whatever it was generated with; ``--events`` and the like are ignored) and
only the views are deleted and rebuilt.

Writes a realistic SQLite event store in bulk (10,000 licenses, up to 100,000
computers with activations and seats, then usage reports, agent check-ins,
pool moves, expiration changes and tags), then in one run prints:

- raw ``sqlite3`` SELECT in pages of 1,000 + ``orjson.loads`` of the same rows;
- ``rebuild_views`` of every view (beside the events, in the same file),
  events/s and the ratio to the raw read; the rebuild runs in a child process
  so that its peak RSS is its own;
- ``licenses(actor, filter)`` p50/p99 from the views for a branch
  administrator and for the Administrator: cold (as in a fresh application),
  with the application's answers forgotten but its license views kept, after
  a pool moved (the kept answer brought up to date), and repeated.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import raw_log

from esmc_licensing import LicenseFilter, LicenseManagement, StatusLevel
from esmc_licensing.domain.ids import UserId
from esmc_licensing.projections.runner import rebuild_views
from esmc_licensing.projections.tables import SQLiteViews
from esmc_licensing.testing import stores
from esmc_licensing.testing.bulk import generate_log


def raw_read(db: Path) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    for rows in raw_log.pages(db):
        for row in rows:
            orjson.loads(row[4])
        n += len(rows)
    return n, time.perf_counter() - start


def rebuild_child(db: Path) -> None:
    """Run in a child process: rebuild, print events, seconds and peak RSS (KiB)."""
    env = stores.sqlite_env(db)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    count = rebuild_views(env)
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime - before.ru_utime + usage.ru_stime - before.ru_stime
    print(orjson.dumps(
        {"events": count, "seconds": elapsed, "cpu": cpu, "peak_kib": usage.ru_maxrss}
    ).decode())


def latency(
    app: LicenseManagement, user: UserId, f: LicenseFilter | None, runs: int, *, forget: tuple[
        str, ...]
) -> tuple[float, float, int]:
    """``forget`` what the application keeps before each query: its last
    answers (``_answers``: as in a fresh application) and the views it
    made of each license (``_made_views``: as in a fresh application)."""
    times = []
    count = 0
    for _ in range(runs):
        for kept in forget:
            app._query_area.__dict__.pop(kept, None)
        t = time.perf_counter()
        count = len(app.licenses(user, f))
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1], count


def after_moves(
    app: LicenseManagement, user: UserId, f: LicenseFilter | None, runs: int
) -> tuple[float, float]:
    """p50/p99 of a query kept by the application, each after one pool moved
    (an administrator's command between two queries, not timed): the kept
    answer is brought up to date with the moved pool's licenses only."""
    admin = app.administrator
    pool = app.pools(admin)[0]
    groups = [pool.group, app.all_group if pool.group != app.all_group else
              app.create_group(admin, "bench-elsewhere")]
    app.licenses(user, f)
    times = []
    for i in range(runs):
        app.move_pools(admin, [pool.pool_id], groups[(i + 1) % 2])
        t = time.perf_counter()
        app.licenses(user, f)
        times.append((time.perf_counter() - t) * 1000)
    if runs % 2:
        app.move_pools(admin, [pool.pool_id], groups[0])
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def queries(env: dict[str, str], runs: int) -> None:
    t = time.perf_counter()
    deployed = LicenseManagement(env=env)
    print(f"opening the application: {(time.perf_counter() - t) * 1000:.0f} ms")
    branch = UserId.derive("bulk-user-0")
    admin = deployed.administrator
    t = time.perf_counter()
    first = deployed.licenses(branch)
    print(f"first query of a fresh application ({len(first):,} licenses of a branch): "
          f"{(time.perf_counter() - t) * 1000:.0f} ms")
    filters = {
        "no filter": None,
        "levels WARNING/ERROR": LicenseFilter(levels=(StatusLevel.WARNING, StatusLevel.ERROR)),
        "text 'server'": LicenseFilter(text="server"),
        "tag 'renew'": LicenseFilter(tags=("renew",)),
    }
    for who, user in (("branch admin", branch), ("Administrator", admin)):
        for name, f in filters.items():
            p50, p99, count = latency(
                deployed, user, f, runs, forget=("_answers", "_made_views"))
            c50, c99, _ = latency(deployed, user, f, runs, forget=("_answers",))
            k50, k99, _ = latency(deployed, user, f, runs, forget=())
            m50, m99 = after_moves(deployed, user, f, runs)
            print(f"licenses({who}, {name}): {count:,} rows; cold p50 {p50:.1f} ms "
                  f"p99 {p99:.1f} ms; answers forgotten, license views kept p50 {c50:.1f} ms "
                  f"p99 {c99:.1f} ms; after a pool moved p50 {m50:.1f} ms p99 {m99:.1f} ms; "
                  f"repeated p50 {k50:.2f} ms p99 {k99:.2f} ms (target p50 <= 20 ms)")
    deployed.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--licenses", type=int, default=10_000)
    parser.add_argument("--computers", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="keep the files here")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --dir: keep an existing DIR/events.db instead of generating the log again",
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--queries-only", action="store_true",
        help="with --reuse: skip the raw read and the rebuild (the views are current)",
    )
    parser.add_argument("--rebuild-child", nargs=1, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rebuild_child:
        rebuild_child(*args.rebuild_child)
        return

    where = args.dir or Path(tempfile.mkdtemp(prefix="esmc-bench-"))
    where.mkdir(parents=True, exist_ok=True)
    db = where / "events.db"
    env = stores.sqlite_env(db)
    if args.reuse and args.dir is not None and db.exists():
        print(f"reusing the log in {db}")
    else:
        for p in where.glob("*.db*"):
            p.unlink()
        app = LicenseManagement(env=env, views=SQLiteViews(":memory:"))  # rebuilt below
        t = time.perf_counter()
        written = generate_log(
            app, events=args.events, licenses=args.licenses, computers=args.computers
        )
        print(f"generated {written:,} events in {time.perf_counter() - t:.1f} s ({db})")
        app.close()

    if args.queries_only:
        queries(env, args.runs)
        return
    n, raw_s = raw_read(db)
    raw_rate = n / raw_s
    print(f"raw sqlite3 SELECT (pages of 1,000) + orjson.loads: {n:,} rows in {raw_s:.2f} s "
          f"= {raw_rate:,.0f} rows/s")

    out = subprocess.run(
        [sys.executable, __file__, "--rebuild-child", str(db)],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    r = orjson.loads(out)
    rate = r["events"] / r["seconds"]
    print(f"rebuild_views, all views -> SQLite: {r['events']:,} events in {r['seconds']:.1f} s "
          f"= {rate:,.0f} events/s (target >= 100,000); raw/rebuild = {raw_rate / rate:.1f}x; "
          f"{r['cpu']:.1f} s of CPU")
    print(f"peak RSS of the rebuild process: {r['peak_kib'] / 1024:.0f} MiB (target < 200 MiB)")

    queries(env, args.runs)


if __name__ == "__main__":
    main()
