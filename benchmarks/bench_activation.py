"""Product activations per second on a SQLite file, beside raw sqlite3 in the same run.

    python benchmarks/bench_activation.py [--n 2000] [--rounds 3]

One activation: ``run_product_activation`` of one license on one computer
(one new seat), with ``InMemoryAgents`` reporting success, so the task, the
seat, the target's result and the product's activation are all recorded (in
one transaction). Beside it, raw ``sqlite3`` doing one SELECT transaction and
one INSERT transaction with eventsourcing's settings (WAL, synchronous=FULL).
The ratio is the figure to compare (issue target: ≥ 0.5 of raw).

``--held SEATS`` activates on one license that already holds that many
seats (taken by one command first). ``--breakdown`` also prints where an
activation's time goes, in µs per activation: deciding, appending (encoding
and the SQLite transaction), the rest of saving, and the views (applied from
memory in batches).
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from bench_commands import raw_sqlite

from esmc_licensing import (
    Adapters,
    InMemoryActivationServer,
    InMemoryAgents,
    LicenseManagement,
    ManualClock,
)

PRODUCT = "ESET Endpoint Security"

#: the data key sealing license keys at rest (R32): one per run
DATA_KEY = base64.b64encode(os.urandom(32)).decode()


#: phase -> seconds, filled by ``--breakdown``
SPENT: dict[str, float] = {}


def _timed(owner: type, name: str, phase: str) -> None:
    original = getattr(owner, name)

    def timed(*args: object, **kwargs: object) -> object:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[phase] = SPENT.get(phase, 0.0) + time.perf_counter() - start

    setattr(owner, name, timed)


def time_phases() -> None:
    """Time the phases of every command from now on (a few µs of overhead each)."""
    from esmc_licensing import eventlog, service

    execute = service.ServiceBase._execute

    def _execute(self: service.ServiceBase, decide, *, dry_run: bool = False):  # type: ignore[no-untyped-def]
        def timed_decide():  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            try:
                return decide()
            finally:
                SPENT["decide"] = SPENT.get("decide", 0.0) + time.perf_counter() - start

        return execute(self, timed_decide, dry_run=dry_run)

    service.ServiceBase._execute = _execute  # type: ignore[method-assign]
    _timed(eventlog.EventLog, "append", "append")
    _timed(service.ServiceBase, "_save_events", "save")
    _timed(service.ServiceBase, "_catch_up_views", "views")


def bench_activation(path: Path, n: int, held: int = 0) -> float:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    vendor = InMemoryActivationServer(clock=clock)
    app = LicenseManagement(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path),
            "ESMC_DATA_KEY": DATA_KEY,
        },
        adapters=Adapters(activation_server=vendor, clock=clock, agents=InMemoryAgents()),
    )
    admin = app.administrator
    per_license = 100 if not held else n + held
    pids = []
    for i in range((n + per_license - 1) // per_license):
        key = vendor.issue(
            public_id=f"BEN-{i // 1000:03d}-{i % 1000:03d}",
            product=PRODUCT,
            units=per_license,
            expires=date(2027, 1, 1),
            owner=f"Owner {i}",
        )
        pids.append(app.add_license_key(admin, key))
    computers = [
        app.register_computer(
            admin, f"pc-{i}", app.all_group, fingerprint=f"hw-{i}", products=[PRODUCT]
        )
        for i in range(n + held)
    ]
    if held:  # the one license already holds ``held`` seats: one command takes them
        app.run_product_activation(admin, pids[0], computers[n:])
        # not timed: loading the license again once (that command's many
        # computers pushed it out of the aggregate cache) and its snapshot
        app.run_product_activation(admin, pids[0], [computers[0]])
        computers, n = computers[1:n], n - 1
    SPENT.clear()
    start = time.perf_counter()
    for i, c in enumerate(computers):
        app.run_product_activation(admin, pids[i // per_license], [c])
    elapsed = time.perf_counter() - start
    rate = n / elapsed
    if SPENT:
        us = {phase: seconds / n * 1e6 for phase, seconds in SPENT.items()}
        print(
            f"  per activation: {elapsed / n * 1e6:.0f} µs = decide {us['decide']:.0f} + append "
            f"{us['append']:.0f} + the rest of saving "
            f"{us['save'] - us['append'] - us.get('views', 0):.0f} + views {us.get('views', 0):.0f}"
            f" + the rest {(elapsed - SPENT['decide'] - SPENT['save']) / n * 1e6:.0f}"
        )
    assert sum(app.license(admin, p).used_units for p in pids) == n + held + (1 if held else 0)
    app.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="activations per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="where an activation's time goes")
    parser.add_argument(
        "--held", type=int, default=0, metavar="SEATS",
        help="activate on one license that already holds this many seats",
    )
    args = parser.parse_args()
    if args.breakdown:
        time_phases()
    raws, acts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            raws.append(raw_sqlite(Path(tmp) / f"raw{r}.db", args.n))
            acts.append(bench_activation(Path(tmp) / f"app{r}.db", args.n, args.held))
    raw, act = statistics.median(raws), statistics.median(acts)
    rounds = ", ".join(f"{r:.0f}/{a:.0f}" for r, a in zip(raws, acts, strict=True))
    print(f"rounds (raw /s, activations /s): {rounds}")
    print(f"cpu count {os.cpu_count()}, n={args.n}, rounds={args.rounds} (medians)")
    print(f"raw sqlite3 SELECT txn + INSERT txn : {raw:10.0f} /s")
    print(f"run_product_activation (1 seat)     : {act:10.0f} /s   ratio {act / raw:.2f}")


if __name__ == "__main__":
    main()
