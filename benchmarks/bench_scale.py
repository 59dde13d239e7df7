"""Do CLI commands cost the work they do, or the length of the history behind them?

    python benchmarks/bench_scale.py                     # 2,000 licenses, 12,000 vs 300,000 events
    python benchmarks/bench_scale.py --dir /tmp/scale --reuse --runs 9
    python benchmarks/bench_scale.py --million --dir /tmp/scale --reuse   # + 1,000,000 events
    python benchmarks/bench_scale.py --licenses 200 --short-events 2000 --long-events 20000 --runs 1

Builds two SQLite stores with ``generate_log`` and the same licenses (same seed,
same ``--licenses``): "short" (``--short-events``) and "long"
(``--long-events``, 25 times longer by default: more computers, check-ins,
usage reports, pool moves...). Then runs each CLI command in a fresh process
(the ``esmc-licensing`` console script beside ``sys.executable``, else
``python -m esmc_licensing.cli``), ``--runs`` times on each store, and prints
the median wall time, the ratio long/short (target <= 1.5) and the child's
peak RSS (``os.wait4``; target <= 150 MiB). Commands: ``licenses --json``,
``license PID --json``, ``pools --json``, ``history PID --json`` (PID: a
Public ID found in both stores) and ``create-group NAME`` (a fresh name each
run; it writes to the store). ``out KiB`` is the size of what each command
printed: where it differs between the stores (``history``: the license has a
longer history in the long store), so does the work.

Cold start: ``esmc-licensing --store EMPTY.db licenses --json`` against
``python -c "import eventsourcing.sqlite, typer"`` in the same run, median of
``--runs`` (target ratio <= 2.5); the first run, which creates the store, is
shown apart.

``--million`` also builds a 1,000,000-event store (10,000 licenses, 100,000
computers) and runs the same commands ``--million-runs`` times there (wall
time and peak RSS, no target); ``--million-events``, ``--million-licenses`` and
``--million-computers`` change those sizes (to try the option on a small store).

The stores have no seal key (R31): their saves are recorded unsealed
(``benchmarks/bench_sealing.py`` measures what sealing each save costs).

``--dir`` keeps the stores there (default: a temporary directory, deleted at
the end); without ``--reuse`` every store is deleted and generated again, with
``--reuse`` an existing store is kept as it is (its sizes are whatever it was
generated with, plus the groups earlier runs created). Children run in that
directory (so no ``./esmc-licensing.toml`` is picked up) without
``ESMC_LICENSING_USER`` and ``ESMC_LICENSING_STORE``: they act as the
Administrator on the store given with ``--store``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# Only the standard library here: a child's ru_maxrss starts at its parent's peak RSS
# (Linux keeps the high-water mark across fork and exec), so this process stays lean
# and generates the stores in a child (--build-child).

RATIO_TARGET = 1.5
PEAK_TARGET_MIB = 150.0
COLD_TARGET = 2.5
# ru_maxrss is in KiB on Linux, in bytes on macOS
RSS_TO_MIB = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024


@dataclass(frozen=True)
class Run:
    wall: float
    peak_mib: float
    code: int
    out: bytes
    err: bytes


@dataclass(frozen=True)
class Figures:
    wall: float  # median
    peak_mib: float  # max
    out_kib: float
    failure: str | None

#: the data key sealing license keys at rest (R32): one per run
DATA_KEY = base64.b64encode(os.urandom(32)).decode()


def cli_argv() -> list[str]:
    script = Path(sys.executable).with_name("esmc-licensing")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "esmc_licensing.cli"]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ESMC_LICENSING_USER", None)
    env.pop("ESMC_LICENSING_STORE", None)
    # Python caches compiled modules as an installed package always has them
    # (pip compiles site-packages); an editable install under
    # PYTHONDONTWRITEBYTECODE=1 would otherwise recompile the package in every
    # process and the cold start would measure the compiler
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run(argv: list[str], cwd: Path) -> Run:
    """One fresh process: wall time and its own peak RSS (``os.wait4``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=child_env())
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(wall, usage.ru_maxrss * RSS_TO_MIB, proc.returncode, out.read(), err.read())


def failure(argv: list[str], r: Run) -> str:
    err = r.err.decode(errors="replace").strip() or "(nothing on stderr)"
    return f"`{' '.join(argv)}` exited {r.code}: {err}"


# -- the stores ------------------------------------------------------------------------


def events_table(db: Path) -> str:
    """The event table's name: the table with originator_id and originator_version."""
    con = sqlite3.connect(db)
    try:
        names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        found = [
            n for n in names
            if {"originator_id", "originator_version"}
            <= {row[1] for row in con.execute(f'PRAGMA table_info("{n}")')}
        ]
    finally:
        con.close()
    if not found:
        raise SystemExit(f"no event table in {db} (tables: {', '.join(names) or 'none'})")
    return "stored_events" if "stored_events" in found else found[0]


def counts(db: Path) -> tuple[int, int, int]:
    """Events, licenses added and computers registered, counted in the file."""
    table = events_table(db)
    con = sqlite3.connect(db)
    try:
        (total,) = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()

        def topic(name: str) -> int:
            (n,) = con.execute(
                f'SELECT count(*) FROM "{table}" WHERE topic = ? OR topic LIKE ?',
                (name, f"%{name}"),
            ).fetchone()
            return int(n)

        return int(total), topic("LicenseAdded"), topic("ComputerRegistered")
    finally:
        con.close()


def remove_store(db: Path) -> None:
    for p in db.parent.glob(db.name + "*"):
        p.unlink()


def build_child(db: Path, events: int, licenses: int, computers: int) -> None:
    """Run in a child process: generate the log into ``db``; print events and seconds."""
    from datetime import UTC, datetime

    from esmc_licensing import Adapters, InMemoryActivationServer, LicenseManagement, ManualClock
    from esmc_licensing.testing.bulk import generate_log

    clock = ManualClock(datetime(2026, 1, 1, 8, 0, tzinfo=UTC))  # before the log's first day
    app = LicenseManagement(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(db),
            "ESMC_DATA_KEY": DATA_KEY,
        },
        adapters=Adapters(activation_server=InMemoryActivationServer(clock=clock), clock=clock),
    )
    sizes = {"events": events, "licenses": licenses}
    if computers >= 0:  # else generate_log's default (capped by the events asked for)
        sizes["computers"] = computers
    start = time.perf_counter()
    written = generate_log(app, **sizes)
    app.close()
    print(json.dumps({"written": written, "seconds": time.perf_counter() - start}))


def build(
    cli: list[str], db: Path, reuse: bool, *, events: int, licenses: int, computers: int = -1
) -> None:
    if reuse and db.exists():
        print(f"  {db.name}: reused")
    else:
        remove_store(db)
        out = subprocess.run(
            [sys.executable, __file__, "--build-child", str(db), str(events), str(licenses),
             str(computers)],
            check=True, stdout=subprocess.PIPE, text=True,
        ).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(f"  {db.name}: generated {r['written']:,} events in {r['seconds']:.1f} s")
    total, lic, comp = counts(db)
    print(f"  {db.name}: {total:,} events in the file, {lic:,} licenses, {comp:,} computers "
          f"({db.stat().st_size / 2**20:.0f} MiB)")


# -- the commands ----------------------------------------------------------------------


def public_ids(r: Run) -> list[str]:
    return [v["public_id"] for v in json.loads(r.out)]


def command_set(pid: str) -> list[tuple[str, list[str]]]:
    return [
        ("licenses --json", ["licenses", "--json"]),
        ("license PID --json", ["license", pid, "--json"]),
        ("pools --json", ["pools", "--json"]),
        ("history PID --json", ["history", pid, "--json"]),
        ("create-group NAME", ["create-group", "<fresh>"]),
    ]


def measure(cli: list[str], db: Path, args: list[str], runs: int, cwd: Path) -> Figures:
    walls, peaks, sizes = [], [], []
    for _ in range(runs):
        argv = [*cli, "--store", str(db),
                *(f"bench-{uuid.uuid4().hex[:12]}" if a == "<fresh>" else a for a in args)]
        r = run(argv, cwd)
        if r.code != 0:
            return Figures(0.0, 0.0, 0.0, failure(argv, r))
        walls.append(r.wall)
        peaks.append(r.peak_mib)
        sizes.append(len(r.out) / 1024)
    return Figures(statistics.median(walls), max(peaks), statistics.median(sizes), None)


def warm_up(cli: list[str], db: Path, cwd: Path) -> Run:
    """The first ``licenses --json`` (page cache, anything a first open leaves behind)."""
    argv = [*cli, "--store", str(db), "licenses", "--json"]
    r = run(argv, cwd)
    if r.code != 0:
        raise SystemExit(failure(argv, r))
    return r


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def scale_table(cli: list[str], short: Path, long: Path, runs: int, cwd: Path) -> bool:
    ws, wl = warm_up(cli, short, cwd), warm_up(cli, long, cwd)
    print(f"warm-up licenses --json (not counted): short {ws.wall:.2f} s, long {wl.wall:.2f} s")
    in_long = set(public_ids(wl))
    common = [p for p in public_ids(ws) if p in in_long]
    if not common:
        raise SystemExit("no Public ID is in both stores: were they generated alike?")
    pid = common[0]
    print(f"PID = {pid}; {runs} run(s) per command and store, median wall time, max peak RSS")
    print()
    head = (f"{'command':<20} {'short s':>8} {'long s':>8} {'long/short':>10} "
            f"{'(<=' + str(RATIO_TARGET) + ')':>7}  {'peak MiB short/long':>19} "
            f"{'(<=' + str(int(PEAK_TARGET_MIB)) + ')':>7}  {'out KiB short/long':>18}")
    print(head)
    print("-" * len(head))
    failures: list[str] = []
    for name, args in command_set(pid):
        s = measure(cli, short, args, runs, cwd)
        lg = measure(cli, long, args, runs, cwd)
        bad = [f.failure for f in (s, lg) if f.failure]
        if bad:
            failures.extend(bad)
            print(f"{name:<20} FAILED (see below)")
            continue
        ratio = lg.wall / s.wall
        peak_ok = max(s.peak_mib, lg.peak_mib) <= PEAK_TARGET_MIB
        print(f"{name:<20} {s.wall:8.3f} {lg.wall:8.3f} {ratio:10.2f} "
              f"{verdict(ratio <= RATIO_TARGET):>7}  "
              f"{f'{s.peak_mib:.0f} / {lg.peak_mib:.0f}':>19} {verdict(peak_ok):>7}  "
              f"{f'{s.out_kib:.0f} / {lg.out_kib:.0f}':>18}")
    for f in failures:
        print(f"error: {f}")
    return not failures


def cold_start(cli: list[str], where: Path, runs: int) -> bool:
    empty = where / "empty.db"
    remove_store(empty)
    cli_args = [*cli, "--store", str(empty), "licenses", "--json"]
    base_args = [sys.executable, "-c", "import eventsourcing.sqlite, typer"]
    create_args = [*cli, "--store", str(empty), "info"]  # a query does not create a store
    first = run(create_args, where)
    if first.code != 0:
        print(f"error: {failure(create_args, first)}")
        return False
    base, cold = [], []
    for _ in range(runs):  # interleaved, so that both see the same machine
        b = run(base_args, where)
        c = run(cli_args, where)
        for argv, r in ((base_args, b), (cli_args, c)):
            if r.code != 0:
                print(f"error: {failure(argv, r)}")
                return False
        base.append(b)
        cold.append(c)
    b_wall = statistics.median(r.wall for r in base)
    c_wall = statistics.median(r.wall for r in cold)
    ratio = c_wall / b_wall
    print(f"first run (creates {empty.name}): {first.wall:.3f} s, {first.peak_mib:.0f} MiB")
    print(f"python -c 'import eventsourcing.sqlite, typer': {b_wall:.3f} s, "
          f"{max(r.peak_mib for r in base):.0f} MiB")
    print(f"esmc-licensing --store {empty.name} licenses --json: {c_wall:.3f} s, "
          f"{max(r.peak_mib for r in cold):.0f} MiB")
    print(f"ratio {ratio:.2f} (target <= {COLD_TARGET}) {verdict(ratio <= COLD_TARGET)}")
    return True


def million(cli: list[str], db: Path, runs: int, cwd: Path) -> bool:
    w = warm_up(cli, db, cwd)
    pid = public_ids(w)[0]
    print(f"warm-up licenses --json (not counted): {w.wall:.2f} s; PID = {pid}; "
          f"{runs} run(s) per command")
    ok = True
    for name, args in command_set(pid):
        f = measure(cli, db, args, runs, cwd)
        if f.failure:
            print(f"{name:<20} FAILED: {f.failure}")
            ok = False
        else:
            print(f"{name:<20} {f.wall:8.3f} s  peak {f.peak_mib:5.0f} MiB  "
                  f"out {f.out_kib:6.0f} KiB")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--licenses", type=int, default=2000)
    parser.add_argument("--short-events", type=int, default=12_000)
    parser.add_argument("--long-events", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per measurement")
    parser.add_argument("--dir", type=Path, default=None, help="keep the stores here")
    parser.add_argument("--reuse", action="store_true", help="keep existing stores in --dir")
    parser.add_argument("--million", action="store_true",
                        help="also a 1,000,000-event store (10,000 licenses, 100,000 computers)")
    parser.add_argument("--million-runs", type=int, default=1)
    parser.add_argument("--million-events", type=int, default=1_000_000)
    parser.add_argument("--million-licenses", type=int, default=10_000)
    parser.add_argument("--million-computers", type=int, default=100_000)
    parser.add_argument("--build-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_child:
        db, events, licenses, computers = args.build_child
        build_child(Path(db), int(events), int(licenses), int(computers))
        return

    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="esmc-scale-")
        where = Path(tmp.name)
    else:
        where = args.dir.resolve()
        where.mkdir(parents=True, exist_ok=True)
    cli = cli_argv()
    short, long, big = where / "short.db", where / "long.db", where / "million.db"
    ok = True
    try:
        print(f"cpu count {os.cpu_count()}, stores in {where}, CLI: {' '.join(cli)}")
        print("stores:")
        start = time.perf_counter()
        build(cli, short, args.reuse, events=args.short_events, licenses=args.licenses)
        build(cli, long, args.reuse, events=args.long_events, licenses=args.licenses)
        if args.million:
            build(cli, big, args.reuse, events=args.million_events,
                  licenses=args.million_licenses, computers=args.million_computers)
        print(f"  ready in {time.perf_counter() - start:.1f} s")
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RSS_TO_MIB
        print(f"(a child's peak RSS below {floor:.0f} MiB, this process's own, reads as "
              f"{floor:.0f})")
        print()
        ok = scale_table(cli, short, long, args.runs, where) and ok
        print()
        print("cold start:")
        ok = cold_start(cli, where, args.runs) and ok
        if args.million:
            print()
            print(f"{big.name}:")
            ok = million(cli, big, args.million_runs, where) and ok
    finally:
        if tmp is not None:
            tmp.cleanup()
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
