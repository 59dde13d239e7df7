"""Peak memory of an embedded application over a long run of commands (target <= 200 MiB).

    python benchmarks/bench_embedded_memory.py            # 100,000 computers, 100,000 commands
    python benchmarks/bench_embedded_memory.py --dir /tmp/embedded --reuse --commands 20000
    python benchmarks/bench_embedded_memory.py --computers 2000 --licenses 500 --commands 2000

Seeds a SQLite file with ``generate_log`` (``--licenses`` licenses, ``--computers``
computers with their activations and seats, then a short tail of daily life;
``--events`` defaults to just enough for every computer, 5 per computer + 3 per
license) in a child process, and seals it with ``esmc-licensing seal-history``
(``generate_log`` writes past the command path, so nothing it wrote is sealed;
the first command would otherwise seal it all, which a store written command by
command never does). Then this process opens the application on it (public
API only, in-memory vendor and agents, a manual clock one second further per
command, ``OverusePolicy.ALWAYS_ALLOW`` so that activations do their whole
work) and runs ``--commands`` random commands as the Administrator:

    90.0 %  computer_connected(random computer)           agent check-ins
     3.0 %  run_product_activation(license, [computer])   a product the computer has,
                                                          a license of that product
     2.0 %  license(pid)        1.5 %  computer(cid)        1.0 %  licenses()
     1.0 %  move_pools([pool], random group)              0.5 %  pools()
     0.5 %  create_group(fresh name)                      0.5 %  history(pid)

It prints this process's peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) and
current RSS after opening, after listing the ids it draws from, every
``--every`` commands (with the commands/s of that stretch) and at the end,
against the target; then per command kind its count and mean/max latency, and
the refusals (``LicensingError``). Only an activation may be refused (an
expired license); any other refusal means the store and the code disagree, and
the script exits 1.
``--dir`` keeps the store (default: a temporary directory, deleted at the end);
with ``--reuse`` an existing ``DIR/embedded.db`` is used as it is.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from esmc_licensing import (
    Adapters,
    ComputerId,
    GroupId,
    InMemoryActivationServer,
    InMemoryAgents,
    LicenseManagement,
    LicensingError,
    ManualClock,
    OverusePolicy,
    Policy,
    PoolId,
    PublicId,
    StatusLevel,
)

TARGET_MIB = 200.0
# ru_maxrss is in KiB on Linux, in bytes on macOS
RSS_TO_MIB = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024
MIX: tuple[tuple[str, float], ...] = (
    ("computer_connected", 0.90),
    ("run_product_activation", 0.03),
    ("license", 0.02),
    ("computer", 0.015),
    ("licenses", 0.01),
    ("move_pools", 0.01),
    ("pools", 0.005),
    ("create_group", 0.005),
    ("history", 0.005),
)

# an activation may meet an expired license or, without ALWAYS_ALLOW, a full one
EXPECTED_REFUSALS = frozenset({
    "run_product_activation: LicenseUnusable",
    "run_product_activation: OveruseRefused",
})

#: the data key sealing license keys at rest (R32) and the seal key sealing every
#: save (R31): from the environment, else one per run, handed to the seeding child
#: (set both to reuse a store with --reuse)
for _variable in ("ESMC_DATA_KEY", "ESMC_SEAL_KEY"):
    os.environ.setdefault(_variable, base64.b64encode(os.urandom(32)).decode())


def env_of(db: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(db),
        "ESMC_DATA_KEY": os.environ["ESMC_DATA_KEY"],
        "ESMC_SEAL_KEY": os.environ["ESMC_SEAL_KEY"],
    }


def cli_argv() -> list[str]:
    script = Path(sys.executable).with_name("esmc-licensing")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "esmc_licensing.cli"]


def seed_child(db: Path, events: int, licenses: int, computers: int) -> None:
    """Run in a child process: generate the log, seal it; print what it took."""
    from esmc_licensing.testing.bulk import generate_log

    clock = ManualClock(datetime(2026, 1, 1, 8, 0, tzinfo=UTC))  # before the log's first day
    app = LicenseManagement(env=env_of(db), adapters=Adapters(clock=clock))
    start = time.perf_counter()
    written = generate_log(app, events=events, licenses=licenses, computers=computers)
    seconds = time.perf_counter() - start
    app.close()
    env = dict(os.environ)
    env.pop("ESMC_LICENSING_USER", None)
    env.pop("ESMC_LICENSING_STORE", None)
    start = time.perf_counter()
    subprocess.run([*cli_argv(), "--store", str(db), "seal-history"], check=True,
                   stdout=subprocess.DEVNULL, cwd=db.parent, env=env)
    sealed = time.perf_counter() - start
    print(json.dumps({"written": written, "seconds": seconds, "sealed": sealed}))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RSS_TO_MIB


def current_mib() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory(label: str) -> None:
    now = current_mib()
    current = "" if now is None else f", current {now:.0f} MiB"
    print(f"{label}: peak RSS {peak_mib():.0f} MiB{current}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--computers", type=int, default=100_000)
    parser.add_argument("--licenses", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=None,
                        help="events to seed (default 5 per computer + 3 per license)")
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=None,
                        help="print memory every N commands (default: a tenth of them)")
    parser.add_argument("--seed", type=int, default=7, help="of the random command mix")
    parser.add_argument("--dir", type=Path, default=None, help="keep the store here")
    parser.add_argument("--reuse", action="store_true",
                        help="with --dir: use an existing DIR/embedded.db as it is")
    parser.add_argument("--seed-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_child:
        db, events, licenses, computers = args.seed_child
        seed_child(Path(db), int(events), int(licenses), int(computers))
        return

    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="esmc-embedded-")
        where = Path(tmp.name)
    else:
        where = args.dir.resolve()
        where.mkdir(parents=True, exist_ok=True)
    try:
        run(args, where / "embedded.db")
    finally:
        if tmp is not None:
            tmp.cleanup()


def seed(args: argparse.Namespace, db: Path) -> None:
    if args.reuse and db.exists():
        print(f"reusing {db}")
        return
    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    events = args.events
    if events is None:
        events = 5 * args.computers + 3 * args.licenses  # generate_log's cap on computers
    out = subprocess.run(
        [sys.executable, __file__, "--seed-child", str(db), str(events), str(args.licenses),
         str(args.computers)],
        check=True, stdout=subprocess.PIPE, text=True,
    ).stdout.strip().splitlines()[-1]
    r = json.loads(out)
    print(f"seeded {r['written']:,} events in {r['seconds']:.1f} s (child process), "
          f"sealed in {r['sealed']:.1f} s ({db})")


def run(args: argparse.Namespace, db: Path) -> None:
    seed(args, db)
    memory("imported, before opening")
    clock = ManualClock(datetime(2026, 2, 1, tzinfo=UTC))  # after the seeded log
    vendor = InMemoryActivationServer(clock=clock)
    agents = InMemoryAgents()
    start = time.perf_counter()
    app = LicenseManagement(
        env=env_of(db),
        adapters=Adapters(activation_server=vendor, agents=agents, clock=clock),
        policy=Policy(overuse=OverusePolicy.ALWAYS_ALLOW),
    )
    admin = app.administrator
    memory(f"opened in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    app.licenses(admin)  # the views are current from here on
    # the ids are read from the views' table in the file, not through
    # ``computers()``: 100,000 computer views held by the benchmark itself
    # would be most of the memory it measures
    with sqlite3.connect(db) as raw:
        computers: list[tuple[ComputerId, tuple[str, ...]]] = [
            (ComputerId(cid), tuple(orjson.loads(state)["products"]))
            for cid, state in raw.execute(
                "SELECT computer_id, state FROM esmc_computers WHERE live = 1"
            )
        ]
    by_product: dict[str, list[PublicId]] = {}
    pids: list[PublicId] = []
    for v in app.licenses(admin):
        pids.append(v.public_id)
        if v.status.level not in (StatusLevel.EXPIRED, StatusLevel.SUSPENDED):
            by_product.setdefault(v.product, []).append(v.public_id)
    pool_views = app.pools(admin)
    pools: list[PoolId] = [p.pool_id for p in pool_views]
    groups: list[GroupId] = sorted({app.all_group, *(p.group for p in pool_views)}, key=str)
    del pool_views
    with_product = [c for c in computers if any(p in by_product for p in c[1])]
    if not computers or not pids or not pools:
        raise SystemExit(f"the store has {len(computers)} computers, {len(pids)} licenses and "
                         f"{len(pools)} pools: nothing to draw from")
    memory(f"listed {len(computers):,} computers, {len(pids):,} licenses, {len(pools):,} pools, "
           f"{len(groups)} groups in {time.perf_counter() - start:.1f} s")

    rnd = random.Random(args.seed)
    refused: dict[str, int] = {}
    created = 0

    def activate() -> None:
        if not with_product:
            app.computer_connected(rnd.choice(computers)[0])
            return
        cid, products = rnd.choice(with_product)
        product = rnd.choice([p for p in products if p in by_product])
        app.run_product_activation(admin, rnd.choice(by_product[product]), [cid], product)
        agents.delivered.clear()  # the double keeps every order; a real transport does not

    def create_group() -> None:
        nonlocal created
        created += 1
        # a fresh name on every run: a reused store keeps the groups of earlier runs
        groups.append(app.create_group(admin, f"Embedded bench {created} {secrets.token_hex(4)}"))

    actions: dict[str, Callable[[], object]] = {
        "computer_connected": lambda: app.computer_connected(rnd.choice(computers)[0]),
        "run_product_activation": activate,
        "license": lambda: app.license(admin, rnd.choice(pids)),
        "computer": lambda: app.computer(admin, rnd.choice(computers)[0]),
        "licenses": lambda: app.licenses(admin),
        "move_pools": lambda: app.move_pools(admin, [rnd.choice(pools)], rnd.choice(groups)),
        "pools": lambda: app.pools(admin),
        "create_group": create_group,
        "history": lambda: app.history(admin, rnd.choice(pids)),
    }
    names = [n for n, _ in MIX]
    weights = [w for _, w in MIX]
    stats: dict[str, list[float]] = {n: [] for n in names}
    every = args.every or max(1, args.commands // 10)
    print(f"{args.commands:,} commands, memory every {every:,}:")
    total_start = stretch_start = time.perf_counter()
    stretch_from = 0
    for i in range(1, args.commands + 1):
        name = rnd.choices(names, weights)[0]
        clock.advance(timedelta(seconds=1))
        t = time.perf_counter()
        try:
            actions[name]()
        except LicensingError as e:
            what = f"{name}: {type(e).__name__}"
            refused[what] = refused.get(what, 0) + 1
        stats[name].append(time.perf_counter() - t)
        if i % every == 0 or i == args.commands:
            now = time.perf_counter()
            rate = (i - stretch_from) / (now - stretch_start)
            stretch_start, stretch_from = now, i
            memory(f"  {i:>9,} commands ({rate:,.0f}/s)")
    elapsed = time.perf_counter() - total_start
    app.close()

    peak = peak_mib()
    print(f"{args.commands:,} commands in {elapsed:.1f} s ({args.commands / elapsed:,.0f}/s); "
          f"peak RSS {peak:.0f} MiB (target <= {TARGET_MIB:.0f} MiB) "
          f"{'PASS' if peak <= TARGET_MIB else 'MISS'}")
    print(f"{'command':<24} {'count':>7} {'mean ms':>9} {'max ms':>9}")
    for name in names:
        times = stats[name]
        if times:
            print(f"{name:<24} {len(times):7,} {sum(times) / len(times) * 1000:9.2f} "
                  f"{max(times) * 1000:9.1f}")
    unexpected = 0
    for what, n in sorted(refused.items()):
        expected = what in EXPECTED_REFUSALS
        unexpected += 0 if expected else n
        print(f"refused: {what} x {n}{'' if expected else ' (unexpected)'}")
    if unexpected:
        print(f"error: {unexpected:,} commands on ids the application listed itself were "
              "refused: the store and the code disagree, the figures above mean little")
        sys.exit(1)


if __name__ == "__main__":
    main()
