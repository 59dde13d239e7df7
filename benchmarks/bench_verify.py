"""History verification (R31) in events per second on SQLite, beside a raw read.

    python benchmarks/bench_verify.py [--events 300000] [--per-save 4] [--rounds 3]

A store of about ``--events`` events (``testing.bulk.generate_log``), every
save of ``--per-save`` events sealed as the application seals it (one seal
per save, chained, on the save's last row: the layout of a SQLite store made
by this version). Then, in the same run, alternately:

- raw: a plain ``sqlite3`` read of the same rows (position, originator id,
  version, topic, state, seal), a page of 2,000 at a time;
- verify: ``seals.verify_store`` -- every save's rows hashed and its chain value
  compared, every seal's chain checked, versions checked per aggregate.

Target (issue 11): verify ≥ 100,000 events/s. Memory stays bounded: the
peak RSS is printed (it holds one page of rows and seals, and one version
per aggregate).
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from esmc_licensing import LicenseManagement, seals
from esmc_licensing.adapters.sealing import (
    SEAL_COLUMN,
    encode_seal,
    sqlite_column_last_seal,
    sqlite_sealed_rows,
)
from esmc_licensing.keyring import Keyring, generate_key
from esmc_licensing.testing.bulk import generate_log

PAGE = 2000


def build(path: Path, events: int, per_save: int, key: bytes) -> int:
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "ESMC_SEAL_KEY": base64.b64encode(key).decode(),
        "ESMC_VIEWS": "memory",
    }
    app = LicenseManagement(env=env)
    start = app.position
    generate_log(
        app, events=events, licenses=max(10, events // 100), computers=max(10, events // 10)
    )
    app.close()
    # seal what generate_log wrote in bulk, as saves of ``per_save`` events each
    sealer = seals.Sealer(Keyring.of("seal", key))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    previous = sqlite_column_last_seal(conn, "stored_events", seals.MARKER_TOPIC)
    after = start
    while True:
        rows = sqlite_sealed_rows(conn.cursor(), "stored_events", after, PAGE)
        if not rows:
            break
        for i in range(0, len(rows), per_save):
            seal = sealer.seal(previous, rows[i : i + per_save])
            conn.execute(
                f"UPDATE stored_events SET {SEAL_COLUMN} = ? WHERE rowid = ?",
                (encode_seal(seal), seal.last),
            )
            previous = seal
        after = rows[-1][0]
    conn.execute("COMMIT")
    (count,) = conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()
    conn.close()
    return int(count)


def raw_read(path: Path) -> tuple[int, float]:
    """Read every event row with its seal column, a page at a time (one scan, as
    verification reads a store that keeps its seals on the events' rows)."""
    start = time.perf_counter()
    conn = sqlite3.connect(path)
    n = 0
    after = 0
    while True:
        rows = conn.execute(
            "SELECT rowid, originator_id, originator_version, topic, state, "
            f"{SEAL_COLUMN} FROM stored_events WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, PAGE),
        ).fetchall()
        if not rows:
            break
        n += len(rows)
        after = rows[-1][0]
    conn.close()
    return n, time.perf_counter() - start


def verify(path: Path, key: bytes) -> tuple[int, float]:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    start = time.perf_counter()
    report = seals.verify_store(env, ring=Keyring.of("seal", key))
    elapsed = time.perf_counter() - start
    assert report.ok, str(report)[:2000]
    assert report.checked == report.sealed_up_to, report
    return report.checked, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--per-save", type=int, default=4, help="events per sealed save")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    key = generate_key()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        t = time.perf_counter()
        total = build(path, args.events, args.per_save, key)
        print(
            f"built {total} events, {args.per_save} per sealed save, "
            f"in {time.perf_counter() - t:.1f} s"
        )
        raws, verifies = [], []
        for _ in range(args.rounds):
            n, elapsed = raw_read(path)
            raws.append(n / elapsed)
            n, elapsed = verify(path, key)
            verifies.append(n / elapsed)
    raw, ver = statistics.median(raws), statistics.median(verifies)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cpu count {os.cpu_count()}, events={total}, rounds={args.rounds} (medians)")
    print(f"raw sqlite3 read of events, seals   : {raw:12.0f} events/s")
    print(
        f"verify_store (whole log)            : {ver:12.0f} events/s   ratio {ver / raw:.2f}"
        f"   target ≥ 100,000/s: {'met' if ver >= 100_000 else 'MISSED'}"
    )
    print(f"peak RSS of the process             : {rss:12.0f} MiB")


if __name__ == "__main__":
    main()
