"""Several processes opening one new store at once all succeed and agree."""

from __future__ import annotations

import multiprocessing

import pytest

from esmc_licensing import LicenseManagement


def _open(env: dict[str, str], queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        app = LicenseManagement(env=env)
        queue.put(("ok", str(app.administrator), app.console_token))
        app.close()
    except Exception as e:  # reported to the parent, which asserts on it
        queue.put(("error", f"{type(e).__name__}: {e}", ""))


@pytest.mark.parametrize("store_env", ["sqlite", "postgres"], indirect=True)
def test_six_processes_opening_a_new_store_at_once(store_env: dict[str, str]) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_open, args=(store_env, queue)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    results = [queue.get(timeout=5) for _ in procs]
    assert [r for r in results if r[0] != "ok"] == []
    # one installation: the same administrator and console token everywhere
    assert len({(r[1], r[2]) for r in results}) == 1
