"""One large pool and one large group: does an operation on one object cost what it touches?

    python benchmarks/bench_large_objects.py [--small 2000] [--large 20000]

Two SQLite stores, in one run, with the same operations on each:

- **a pool**: an EMA2 account of one company holding ``--small`` (then
  ``--large``) licenses, imported in one ``connect_account``; then, each
  once in the same application: a sync that finds nothing new,
  ``license(PID)``, ``history(PID)`` of one license, ``preview_move`` and
  ``move_pools`` of the pool, ``remove_pools`` (R18, R19, R29, R37);
- **alert delivery**: ``deliver_alerts`` to an in-memory sink of every alert
  the import raised (one license in ten is not registered), then again with
  nothing new (R35).

Printed: milliseconds of each on the small and the large store and their
ratio. An operation on one object (``license``, ``history``) should stay
near 1.0 whatever the pool's size; one on every license of the pool
(import, sync, preview, move, remove) near the size ratio (10 by default):
well above it is cost growing faster than the work. The aggregate cache
holds 10,000 states by default, so the large pool does not fit in it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from esmc_licensing import (
    AccountKind,
    Adapters,
    Credentials,
    Ema2AccountType,
    InMemoryAccounts,
    InMemoryActivationServer,
    InMemoryAlertSink,
    LicenseManagement,
    ManualClock,
)
from esmc_licensing.testing import stores

CREDENTIALS = Credentials("msp@example.com", "bench-Passw0rd")


def _vendor(n: int) -> tuple[InMemoryActivationServer, InMemoryAccounts]:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    vendor = InMemoryActivationServer(clock=clock)
    accounts = InMemoryAccounts(vendor)
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    ids = []
    for i in range(n):
        a, b = divmod(i, len(alphabet) ** 3)
        code = "".join(alphabet[(b // len(alphabet) ** k) % len(alphabet)] for k in range(3))
        pid = f"L{a:02d}-{code}-000"
        # one license in ten is not registered: an alert to deliver (R35)
        vendor.issue(public_id=pid, product="ESET Endpoint Security", units=25,
                     expires=date(2027, 6, 30), owner="Big Company", registered=i % 10 != 0)
        ids.append(pid)
    accounts.add_ema2_account(CREDENTIALS, Ema2AccountType.MSP, {"Big Company": ids})
    return vendor, accounts


def measure(n: int) -> dict[str, float]:
    """Milliseconds of each operation on a pool of ``n`` licenses."""
    vendor, accounts = _vendor(n)
    out: dict[str, float] = {}

    def timed(label: str, op: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = op()
        out[label] = (time.perf_counter() - start) * 1000
        return result

    with tempfile.TemporaryDirectory() as tmp:
        sink = InMemoryAlertSink("bench")
        app = LicenseManagement(env=stores.sqlite_env(Path(tmp) / "store.db"), adapters=Adapters(
            activation_server=vendor, accounts=accounts, alert_sinks=(sink,)))
        admin = app.administrator
        timed("import (connect_account)", lambda: app.connect_account(
            admin, AccountKind.EMA2, CREDENTIALS))
        (pool,) = app.pools(admin)
        pid = pool.public_ids[len(pool.public_ids) // 2]
        timed("sync, nothing new", app.synchronize)
        app.license(admin, pool.public_ids[0])  # the first query of the process, untimed
        timed("license(PID)", lambda: app.license(admin, pid))
        timed("history(PID)", lambda: app.history(admin, pid))
        branch = app.create_group(admin, "Branch")
        timed("preview_move", lambda: app.preview_move(admin, [pool.pool_id], branch))
        timed("move_pools", lambda: app.move_pools(admin, [pool.pool_id], branch))
        report = timed("deliver_alerts", app.deliver_alerts)
        out["alerts delivered"] = float(report.delivered["bench"])
        timed("deliver_alerts, nothing new", app.deliver_alerts)
        timed("remove_pools", lambda: app.remove_pools(admin, [pool.pool_id], confirm=True))
        app.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20_000)
    args = parser.parse_args()
    small, large = measure(args.small), measure(args.large)
    print(f"one pool of {args.small:,} / {args.large:,} licenses (size ratio "
          f"{args.large / args.small:.0f}), ms:")
    for label in small:
        if label == "alerts delivered":
            print(f"  {label:30s} {small[label]:10,.0f} {large[label]:10,.0f}")
            continue
        print(f"  {label:30s} {small[label]:10.1f} {large[label]:10.1f}   "
              f"x{large[label] / max(small[label], 0.001):.1f}")


if __name__ == "__main__":
    main()
