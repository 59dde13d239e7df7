"""What per-save sealing (R31) costs the command path, sealed beside unsealed in one run.

    python benchmarks/bench_sealing.py [--n 2000] [--rounds 5]

Runs the commands of ``bench_commands.py`` (``add_license_key``,
``move_pools``) and of ``bench_activation.py`` (``run_product_activation``)
on fresh SQLite files, alternately without a seal key and with
``ESMC_SEAL_KEY`` set (every save then also writes its seal row in its
transaction), and prints the medians and sealed / unsealed. Target
(issue 11): sealing costs at most 5 % (ratio ≥ 0.95).
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
from pathlib import Path

from bench_activation import bench_activation
from bench_commands import bench_app

from esmc_licensing.keyring import generate_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="commands per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    key = base64.b64encode(generate_key()).decode()
    figures: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # alternate which goes first, so drift on a shared machine evens out
            for sealed in (r % 2 == 0, r % 2 == 1):
                if sealed:
                    os.environ["ESMC_SEAL_KEY"] = key
                else:
                    os.environ.pop("ESMC_SEAL_KEY", None)
                tag = "s" if sealed else "u"
                add, move = bench_app(Path(tmp) / f"cmd-{tag}{r}.db", args.n)
                act = bench_activation(Path(tmp) / f"act-{tag}{r}.db", args.n)
                for name, rate in (
                    ("add_license_key", add),
                    ("move_pools", move),
                    ("run_product_activation", act),
                ):
                    figures.setdefault((name, sealed), []).append(rate)
    os.environ.pop("ESMC_SEAL_KEY", None)
    print(f"cpu count {os.cpu_count()}, n={args.n}, rounds={args.rounds} (medians)")
    for name in ("add_license_key", "move_pools", "run_product_activation"):
        unsealed = statistics.median(figures[(name, False)])
        sealed = statistics.median(figures[(name, True)])
        print(
            f"{name:24s}: unsealed {unsealed:8.0f} /s   sealed {sealed:8.0f} /s   "
            f"sealed/unsealed {sealed / unsealed:.3f}"
        )


if __name__ == "__main__":
    main()
