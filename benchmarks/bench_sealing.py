"""What per-save sealing (R31) costs the command path, sealed beside unsealed in one run.

    python benchmarks/bench_sealing.py [--n 1000] [--rounds 6] [--chunk 25] [--postgres]
                                       [--dir D] [--aa]

The commands of ``bench_commands.py`` (``add_license_key``, ``move_pools``)
and of ``bench_activation.py`` (``run_product_activation``, one seat each),
on two fresh SQLite files side by side: one application without a seal key,
one with ``ESMC_SEAL_KEY`` (every save then also writes its seal, in the same
statement as its events). The two run **interleaved**, ``--chunk`` commands
of one, then of the other, so the disk's fsync latency and the other
processes on a shared machine weigh on both alike (run one after the other,
the ratio swung by ±10 % between runs of the same code). Each phase reports
commands per second of wall time and of this process's user CPU time; the
ratio sealed / unsealed is taken in each round (both sides saw the same
machine) and its median over ``--rounds`` pairs of fresh files printed, with
the lowest and highest round. The cyclic garbage collector is off while a
phase is timed (see ``run_pair``).

``--postgres``: the same on two fresh schemas of the PostgreSQL server the
tests use (``ESMC_POSTGRES_*``, default 127.0.0.1:5432, database ``test``).

Target (issue 11): sealing costs at most 5 % (ratio ≥ 0.95).
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
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
from esmc_licensing.testing import stores

PRODUCT = "ESET Endpoint Security"
PHASES = ("add_license_key", "move_pools", "run_product_activation")


def _user_cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


class Side:
    """One application and the commands of each phase, run a chunk at a time."""

    def __init__(self, store: dict[str, str], seal_key: str | None, n: int) -> None:
        self.clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
        self.vendor = InMemoryActivationServer(clock=self.clock)
        env = dict(store)
        if seal_key:
            env["ESMC_SEAL_KEY"] = seal_key
        self.app = LicenseManagement(
            env=env,
            adapters=Adapters(
                activation_server=self.vendor, clock=self.clock, agents=InMemoryAgents()
            ),
        )
        self.n = n
        self.sealed = bool(seal_key)
        #: per phase: (wall seconds, user CPU seconds, commands)
        self.spent: dict[str, list[float]] = {name: [0.0, 0.0, 0] for name in PHASES}

    def calls(self, phase: str) -> Sequence[Callable[[], object]]:
        app, admin, n = self.app, self.app.administrator, self.n
        if phase == "add_license_key":
            keys = [
                self.vendor.issue(
                    public_id=f"{i // 10000 % 1000:03d}-{i // 100 % 100:03d}-{i % 100:03d}",
                    product=PRODUCT,
                    units=100,
                    expires=date(2027, 1, 1),
                    owner=f"Owner {i % 97}",
                )
                for i in range(n)
            ]
            return [lambda k=k: app.add_license_key(admin, k) for k in keys]
        if phase == "move_pools":
            groups = [app.create_group(admin, "Branch A"), app.create_group(admin, "Branch B")]
            pools = [p.pool_id for p in app.pools(admin)]
            return [
                lambda i=i: app.move_pools(
                    admin, [pools[i % len(pools)]], groups[(i // len(pools)) % 2]
                )
                for i in range(n)
            ]
        # one license with a seat for every activation
        key = self.vendor.issue(
            public_id="ACT-999-999", product=PRODUCT, units=n, expires=date(2027, 1, 1),
            owner="Activations",
        )
        pid = app.add_license_key(admin, key)
        computers = [
            app.register_computer(
                admin, f"pc-{i}", app.all_group, fingerprint=f"hw-{i}", products=[PRODUCT]
            )
            for i in range(n)
        ]
        return [lambda c=c: app.run_product_activation(admin, pid, [c]) for c in computers]

    def run(self, phase: str, calls: Sequence[Callable[[], object]]) -> None:
        wall, cpu = time.perf_counter(), _user_cpu()
        for call in calls:
            call()
        spent = self.spent[phase]
        spent[0] += time.perf_counter() - wall
        spent[1] += _user_cpu() - cpu
        spent[2] += len(calls)


@contextmanager
def _stores(folder: Path, postgres: bool) -> Iterator[list[dict[str, str]]]:
    """Two fresh stores: SQLite files, or PostgreSQL schemas dropped afterwards."""
    if not postgres:
        yield [
            {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(folder / name)}
            for name in ("unsealed.db", "sealed.db")
        ]
        return
    with ExitStack() as stack:
        envs = []
        for _ in range(2):
            env = stores.postgres_env(stack.enter_context(stores.postgres_schema()))
            env.pop("ESMC_DATA_KEY", None)  # this process's, as for SQLite
            envs.append(env)
        yield envs


def run_pair(
    folder: Path, seal_key: str, n: int, chunk: int, sealed_first: bool, postgres: bool
) -> list[Side]:
    with _stores(folder, postgres) as (plain, sealed):
        return _run_pair(plain, sealed, seal_key, n, chunk, sealed_first)


def _run_pair(
    plain: dict[str, str], sealed: dict[str, str], seal_key: str, n: int, chunk: int,
    sealed_first: bool,
) -> list[Side]:
    pair = [Side(plain, None, n), Side(sealed, seal_key or None, n)]
    sides = pair[::-1] if sealed_first else pair
    for phase in PHASES:
        work = [side.calls(phase) for side in sides]
        # no cyclic collection while timing: with two applications in one
        # process its full passes fell, run after run, into the same side's
        # turns (an A/A run -- both sides unsealed -- put one side 10-15 %
        # behind the other); with it off, A/A comes out at 0.99-1.02
        gc.collect()
        gc.disable()
        try:
            for start in range(0, max(len(w) for w in work), chunk):
                for side, calls in zip(sides, work, strict=True):
                    side.run(phase, calls[start : start + chunk])
        finally:
            gc.enable()
    for side in sides:
        side.app.close()
    return pair  # unsealed, sealed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="commands per phase")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--chunk", type=int, default=25, help="commands per turn")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument(
        "--dir", type=Path, default=None,
        help="where the SQLite files go (e.g. /dev/shm: no disk latency, the library's own cost)",
    )
    parser.add_argument(
        "--aa", action="store_true",
        help="both sides unsealed (an A/A run: the harness's own error, around 1.00)",
    )
    args = parser.parse_args()
    if args.postgres and (reason := stores.postgres_unavailable_reason()):
        parser.error(f"--postgres: {reason}")
    key = "" if args.aa else base64.b64encode(generate_key()).decode()
    rates: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for r in range(args.rounds):
            folder = Path(tmp) / str(r)
            folder.mkdir()
            pair = run_pair(
                folder, key, args.n, args.chunk, sealed_first=r % 2 == 1, postgres=args.postgres
            )
            for i, side in enumerate(pair):
                for phase, (wall, cpu, count) in side.spent.items():
                    rates.setdefault((phase, i), []).append((count / wall, count / cpu))
    print(
        f"{'PostgreSQL' if args.postgres else 'SQLite'}, cpu count {os.cpu_count()}, "
        f"n={args.n}, rounds={args.rounds}, chunk={args.chunk}"
        f"{', A/A: both unsealed' if args.aa else ''} "
        "(commands/s: medians; ratio sealed/unsealed: median of the rounds' [lowest, highest])"
    )
    for phase in PHASES:
        line = f"{phase:23s}"
        for i, what in ((0, "wall"), (1, "user cpu")):
            plain = [r[i] for r in rates[(phase, 0)]]
            sealed = [r[i] for r in rates[(phase, 1)]]
            ratios = sorted(b / a for a, b in zip(plain, sealed, strict=True))
            line += (
                f" | {what}: unsealed {statistics.median(plain):7.0f} sealed "
                f"{statistics.median(sealed):7.0f} ratio {statistics.median(ratios):.3f} "
                f"[{ratios[0]:.2f}, {ratios[-1]:.2f}]"
            )
        print(line)


if __name__ == "__main__":
    main()
