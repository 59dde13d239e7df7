"""The view runner and the rebuild in processes of their own, killed with SIGKILL (R30).

``esmc-licensing project`` follows a SQLite store with tens of thousands of
events into SQLite views, one transaction per page of the log, each with its
tracking position. Killed with SIGKILL once it has committed some pages but
not all, it leaves views holding exactly the events up to their position;
``project --once`` started afterwards resumes from there and ends with views
equal, row for row, to a fresh rebuild from the log.

``esmc-licensing rebuild`` empties the views (position 0) in a transaction of
its own, then applies the log in batches that each commit with their
position. Killed after the views were emptied, it leaves views a runner
completes just the same.
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
from esmc_licensing.eventlog import EventLog
from esmc_licensing.projections.runner import (
    REBUILD_BATCH,
    LogReader,
    ViewUpdater,
    rebuild_views,
)
from esmc_licensing.projections.tables import SQLiteViews
from esmc_licensing.testing import stores
from esmc_licensing.testing.bulk import generate_log

from .test_projections import _rows

EVENTS = 40_000
#: more than a rebuild's batch (``REBUILD_BATCH``): a rebuild commits twice
REBUILD_EVENTS = 60_000

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def _cli(db: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "esmc_licensing.cli", "--store", str(db), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )


def _project(db: Path, views: Path, *extra: str) -> subprocess.Popen[bytes]:
    return _cli(db, "project", "--views", f"sqlite:{views}", *extra)


def _store_with_log(db: Path, events: int = EVENTS) -> tuple[dict[str, str], int]:
    """A SQLite store at ``db`` holding a bulk log; its settings and last position."""
    env = stores.sqlite_env(db)
    app = LicenseManagement(env=env)
    generate_log(app, events=events, licenses=2_000, computers=3_000)
    total = app._core.event_log.end()
    app.close()
    return env, total


def _upto(env: dict[str, str], path: Path, position: int) -> SQLiteViews:
    """Fresh views holding exactly the log up to ``position``."""
    reader = LogReader(env=env)
    try:
        views = SQLiteViews(str(path))
        ViewUpdater(EventLog(reader.recorder, reader.mapper), views).catch_up(stop=position)  # type: ignore[arg-type]
        return views
    finally:
        reader.close()


def _complete_and_compare(
    db: Path, views_path: Path, views: SQLiteViews, env: dict[str, str], total: int,
    tmp_path: Path,
) -> None:
    """``project --once`` in a new process, then the views must equal a fresh rebuild."""
    again = _project(db, views_path, "--once")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()
    assert f"Views are at log position {total}" in out.decode()
    assert views.position() == total
    rebuilt = SQLiteViews(str(tmp_path / "rebuilt.db"))
    assert rebuild_views(env, rebuilt) == total
    assert _rows(views) == _rows(rebuilt)
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
            process.wait(10)


def test_r30_a_runner_killed_mid_catch_up_resumes_to_views_equal_to_a_rebuild(
    tmp_path: Path,
) -> None:
    db, views_path = tmp_path / "events.db", tmp_path / "views.db"
    env, total = _store_with_log(db)

    views = SQLiteViews(str(views_path))
    runner = _project(db, views_path)
    _kill_when(runner, lambda: views.position() >= 2_000, "the runner made no progress")
    killed_at = views.position()
    assert runner.returncode == -signal.SIGKILL
    assert 0 < killed_at < total, "killed before or after the catch-up, not during it"
    # what the killed runner committed is exactly the log up to its position
    upto = _upto(env, tmp_path / "upto.db", killed_at)
    assert _rows(views) == _rows(upto)
    upto.close()

    _complete_and_compare(db, views_path, views, env, total, tmp_path)


@pytest.mark.parametrize("when", ["once it emptied the views", "after its first batch"])
def test_r30_a_rebuild_killed_midway_leaves_views_a_runner_completes(
    tmp_path: Path, when: str
) -> None:
    """Killed after it emptied the old views, a rebuild leaves them at the position
    of its last committed batch (0: empty) with exactly the rows up to there --
    never views that claim a position they do not hold."""
    db, views_path = tmp_path / "events.db", tmp_path / "views.db"
    env, total = _store_with_log(db, REBUILD_EVENTS)
    assert total > REBUILD_BATCH
    views = SQLiteViews(str(views_path))
    rebuild_views(env, views)  # views at the end of the log, to be emptied
    assert views.position() == total

    rebuild = _cli(db, "rebuild", "--views", f"sqlite:{views_path}")
    if when == "once it emptied the views":
        ready = lambda: views.position() == 0  # noqa: E731
    else:
        ready = lambda: 0 < views.position() < total  # noqa: E731
    _kill_when(rebuild, ready, f"the rebuild was never seen {when}", pause=0.002)
    assert rebuild.returncode == -signal.SIGKILL
    position = views.position()
    if position == 0:
        assert all(rows == [] for rows in views.dump().values())
    else:  # a batch committed before the kill: the rows of exactly the log up to it
        assert position == REBUILD_BATCH or when == "once it emptied the views"
        upto = _upto(env, tmp_path / "upto.db", position)
        assert _rows(views) == _rows(upto)
        upto.close()

    _complete_and_compare(db, views_path, views, env, total, tmp_path)


def test_r30_project_once_brings_the_views_beside_the_events_up_to_the_log(
    tmp_path: Path,
) -> None:
    """Without ``--views`` the runner keeps the views an application reads: the ones
    beside the events (here written behind the application's back, in bulk)."""
    db = tmp_path / "events.db"
    env, total = _store_with_log(db)
    project = _cli(db, "project", "--once")
    _, err = project.communicate(timeout=120)
    assert project.returncode == 0, err.decode()
    beside = SQLiteViews(str(db))
    try:
        assert beside.position() == total
        rebuilt = SQLiteViews(str(tmp_path / "rebuilt.db"))
        rebuild_views(env, rebuilt)
        assert _rows(beside) == _rows(rebuilt)
        rebuilt.close()
    finally:
        beside.close()
