"""A projection runner in its own process, killed with SIGKILL mid catch-up (R30).

The runner (``esmc-licensing project``) follows a SQLite store with tens of
thousands of events into SQLite views. It is killed with SIGKILL once it has
committed some pages but not all; started again, it resumes from its tracking
record and ends with views equal, row for row, to a rebuild from the log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from esmc_licensing import LicenseManagement
from esmc_licensing.projections.runner import rebuild_views
from esmc_licensing.projections.sqlite_views import SQLiteViewStore
from esmc_licensing.testing import stores
from esmc_licensing.testing.bulk import generate_log

EVENTS = 40_000


def _project(store: Path, views: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "esmc_licensing.cli", "--store", str(store),
         "project", "--views", f"sqlite:{views}", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )

def _complete_and_compare(
    db: Path, views_path: Path, views: SQLiteViewStore, env: dict[str, str], total: int,
    tmp_path: Path,
) -> None:
    """``project --once`` in a new process, then the views must equal a fresh rebuild."""
    again = _project(db, views_path, "--once")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()
    assert views.max_tracking_id("LicenseManagement") == total
    rebuilt = SQLiteViewStore(tmp_path / "rebuilt.db")
    rebuild_views(env, rebuilt)
    assert views.dump() == rebuilt.dump()
    views.close()
    rebuilt.close()

def _kill_when(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], never: str,
    pause: float = 0.005,
) -> None:
    """SIGKILL ``process`` as soon as ``ready()``; fail if it dies or takes 60 s first."""
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, never
            time.sleep(pause)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()

def _store_with_log(db: Path) -> tuple[dict[str, str], int]:
    """A SQLite store at ``db`` holding a bulk log; its settings and last position."""
    env = stores.sqlite_env(db)
    app = LicenseManagement(env=env)
    generate_log(app, events=EVENTS, licenses=2_000, computers=3_000)
    total = app.recorder.max_notification_id() or 0
    app.close()
    return env, total





@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_r30_a_runner_killed_mid_catch_up_resumes_to_views_equal_to_a_rebuild(
    tmp_path: Path,
) -> None:
    db, views_path = tmp_path / "events.db", tmp_path / "views.db"
    env, total = _store_with_log(db)

    views = SQLiteViewStore(views_path)
    runner = _project(db, views_path)
    _kill_when(
        runner,
        lambda: (views.max_tracking_id("LicenseManagement") or 0) >= 2_000,
        "the runner made no progress",
    )
    killed_at = views.max_tracking_id("LicenseManagement") or 0
    assert runner.returncode == -signal.SIGKILL
    assert 0 < killed_at < total, "killed before or after the catch-up, not during it"

    _complete_and_compare(db, views_path, views, env, total, tmp_path)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_r30_a_rebuild_killed_at_any_moment_leaves_views_a_runner_completes(
    tmp_path: Path,
) -> None:
    """``esmc-licensing rebuild`` writes the views in one transaction at the end.
    Killed with SIGKILL after it dropped the old views, it leaves them either
    empty without a tracking record (so a runner starts from the beginning)
    or complete -- never views that claim a position they do not hold."""
    db, views_path = tmp_path / "events.db", tmp_path / "views.db"
    env, total = _store_with_log(db)
    views = SQLiteViewStore(views_path)
    rebuild_views(env, views)  # views at the end of the log, to be dropped
    assert views.max_tracking_id("LicenseManagement") == total

    rebuild = subprocess.Popen(
        [sys.executable, "-m", "esmc_licensing.cli", "--store", str(db),
         "rebuild", "--views", f"sqlite:{views_path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _kill_when(
        rebuild,
        lambda: views.max_tracking_id("LicenseManagement") is None,  # dropped
        "the rebuild never dropped the views",
        pause=0.002,
    )
    position, rows = views.changes_since(0)
    if position == 0:
        assert views.max_tracking_id("LicenseManagement") is None
        assert rows == [] and views.audit_refs() == []
    else:  # it finished before the kill
        assert position == total

    _complete_and_compare(db, views_path, views, env, total, tmp_path)
