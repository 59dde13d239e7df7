"""What per-save sealing (R31) costs the command path, sealed beside unsealed in one run.

    python benchmarks/bench_sealing.py [--n 1000] [--rounds 6]

The commands of ``bench_commands.py`` (``add_license_key``, ``move_pools``)
and of ``bench_activation.py`` (``run_product_activation``, one seat each) on
fresh SQLite files, alternately without a seal key and with ``ESMC_SEAL_KEY``
set (every save then also writes its seal row, in the same transaction as its
events: one more INSERT before the COMMIT). Each
measured loop reports commands per second of wall time and of this process's
user CPU time: on a shared machine the wall figures swing with the disk's
fsync latency and the other processes (both variants commit once per
command), the user CPU figures show what sealing costs the library itself.
Target (issue 11): sealing costs at most 5 % (ratio ≥ 0.95).
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from esmc_licensing import (
    Adapters,
    InMemoryActivationServer,
    InMemoryAgents,
    LicenseManagement,
    ManualClock,
)
from esmc_licensing.keyring import generate_key

PRODUCT = "ESET Endpoint Security"


def _user_cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def _timed(calls: Iterable[Callable[[], object]], n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _user_cpu()
    for call in calls:
        call()
    return n / (time.perf_counter() - wall), n / (_user_cpu() - cpu)


def run(path: Path, n: int) -> dict[str, tuple[float, float]]:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    vendor = InMemoryActivationServer(clock=clock)
    app = LicenseManagement(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)},
        adapters=Adapters(activation_server=vendor, clock=clock, agents=InMemoryAgents()),
    )
    admin = app.administrator
    out: dict[str, tuple[float, float]] = {}
    keys = [
        vendor.issue(
            public_id=f"{i // 10000 % 1000:03d}-{i // 100 % 100:03d}-{i % 100:03d}",
            product=PRODUCT,
            units=100,
            expires=date(2027, 1, 1),
            owner=f"Owner {i % 97}",
        )
        for i in range(n)
    ]
    out["add_license_key"] = _timed(((lambda k=k: app.add_license_key(admin, k)) for k in keys), n)
    groups = [app.create_group(admin, "Branch A"), app.create_group(admin, "Branch B")]
    pools = [p.pool_id for p in app.pools(admin)]
    out["move_pools"] = _timed(
        (
            (
                lambda i=i: app.move_pools(
                    admin, [pools[i % len(pools)]], groups[(i // len(pools)) % 2]
                )
            )
            for i in range(n)
        ),
        n,
    )
    pids = [app.license(admin, str(p)).public_id for p in app.pools(admin)[0].public_ids][:1]
    pid = pids[0]
    computers = [
        app.register_computer(
            admin, f"pc-{i}", app.all_group, fingerprint=f"hw-{i}", products=[PRODUCT]
        )
        for i in range(min(n, 100))
    ]
    out["run_product_activation"] = _timed(
        ((lambda c=c: app.run_product_activation(admin, pid, [c])) for c in computers),
        len(computers),
    )
    app.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="commands per measurement")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    key = base64.b64encode(generate_key()).decode()
    figures: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # alternate which goes first, so drift on a shared machine evens out
            for sealed in (r % 2 == 0, r % 2 == 1):
                if sealed:
                    os.environ["ESMC_SEAL_KEY"] = key
                else:
                    os.environ.pop("ESMC_SEAL_KEY", None)
                for name, rates in run(
                    Path(tmp) / f"{'s' if sealed else 'u'}{r}.db", args.n
                ).items():
                    figures.setdefault((name, sealed), []).append(rates)
    os.environ.pop("ESMC_SEAL_KEY", None)
    print(f"cpu count {os.cpu_count()}, n={args.n}, rounds={args.rounds} (medians, commands/s)")
    for name in ("add_license_key", "move_pools", "run_product_activation"):
        line = f"{name:23s}"
        for i, what in ((0, "wall"), (1, "user cpu")):
            unsealed = statistics.median(r[i] for r in figures[(name, False)])
            sealed = statistics.median(r[i] for r in figures[(name, True)])
            line += (
                f" | {what}: unsealed {unsealed:7.0f} sealed {sealed:7.0f} "
                f"ratio {sealed / unsealed:.3f}"
            )
        print(line)


if __name__ == "__main__":
    main()
