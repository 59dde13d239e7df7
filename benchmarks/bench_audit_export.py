"""The audit export (R31, issue 11): events per second and peak memory, beside a raw read.

    python benchmarks/bench_audit_export.py [--events 200000] [--dir DIR [--reuse]] [--runs 3]

A SQLite store of about ``--events`` events (``testing.bulk.generate_log``:
licenses, computers with activations, check-ins, usage reports, moves), then,
alternately in the same run:

- raw: a plain ``sqlite3`` read of the same rows a page at a time, each row's
  stored JSON loaded and written back as one line to a file (``orjson``) --
  what any export costs at least;
- export: ``esmc-licensing audit export --output FILE`` in a fresh process
  (verification of the whole log, then every event as an entry with names as
  they were, R29), its wall time and its own peak RSS (``os.wait4``). The
  views are rebuilt (untimed) first: the first command on a generated store
  builds them.

Memory must not grow with the log (the export streams); there is no speed
target in the issue, the ratio to raw says what is left.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import raw_log

RSS_TO_MIB = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024


def cli_argv() -> list[str]:
    script = Path(sys.executable).with_name("esmc-licensing")
    return [str(script)] if script.exists() else [sys.executable, "-m", "esmc_licensing.cli"]


def build(db: Path, events: int) -> int:
    """In a child process, so that this one's peak RSS stays small (a child's
    ru_maxrss starts at its parent's)."""
    code = (
        "import sys\n"
        "from esmc_licensing import LicenseManagement\n"
        "from esmc_licensing.testing import stores\n"
        "from esmc_licensing.testing.bulk import generate_log\n"
        "from pathlib import Path\n"
        "n = int(sys.argv[2])\n"
        "app = LicenseManagement(env=stores.sqlite_env(Path(sys.argv[1])))\n"
        "print(generate_log(app, events=n, licenses=max(10, n // 40),\n"
        "                   computers=max(10, n // 10)))\n"
        "app.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db), str(events)],
        check=True, capture_output=True, text=True,
    )
    return int(out.stdout.split()[-1])


def raw(db: Path, out: Path) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    with out.open("wb") as f:
        for rows in raw_log.pages(db):
            for row in rows:
                data = orjson.loads(row[4])
                f.write(orjson.dumps({"position": row[0], "what": row[3], "details": data}))
                f.write(b"\n")
            n += len(rows)
    return n, time.perf_counter() - start


def export(db: Path, out: Path) -> tuple[float, float, int]:
    argv = [*cli_argv(), "--store", str(db), "audit", "export", "--output", str(out), "--json"]
    env = dict(os.environ)
    env.pop("ESMC_LICENSING_USER", None)
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise SystemExit(f"export failed: {stderr.read().decode(errors='replace')}")
        stdout.seek(0)
        exported = orjson.loads(stdout.read())["exported"]
    return wall, usage.ru_maxrss * RSS_TO_MIB, exported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, default=None, help="keep the store here")
    parser.add_argument("--reuse", action="store_true", help="keep DIR/events.db if it exists")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        db = where / "events.db"
        if not (args.reuse and db.exists()):
            for old in where.glob("events.db*"):
                old.unlink()
            start = time.perf_counter()
            written = build(db, args.events)
            print(f"generated {written:,} events in {time.perf_counter() - start:.1f} s ({db})")
        # the views are built by the first command on a generated store: not timed here
        subprocess.run([*cli_argv(), "--store", str(db), "rebuild"], check=True,
                       capture_output=True)
        raws, exports, peaks = [], [], []
        count = 0
        for _ in range(args.runs):
            n, seconds = raw(db, where / "raw.jsonl")
            raws.append(n / seconds)
            wall, peak, count = export(db, where / "export.jsonl")
            exports.append(count / wall)
            peaks.append(peak)
        raw_rate, export_rate = statistics.median(raws), statistics.median(exports)
        print(f"raw read + orjson line per event: {raw_rate:,.0f} events/s (median of {args.runs})")
        runs = ", ".join(f"{r:,.0f}" for r in exports)
        print(
            f"audit export --output FILE (fresh process, with verification): {count:,} events, "
            f"{export_rate:,.0f} events/s (median; runs {runs}), "
            f"export/raw = {export_rate / raw_rate:.3f}; peak RSS {max(peaks):.0f} MiB"
        )


if __name__ == "__main__":
    main()
