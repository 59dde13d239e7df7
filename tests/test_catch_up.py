"""Catching up a long way, with progress (R30, issue 10).

A store written in bulk, or whose views a new version rebuilds, has its views
built by the first query: about a minute a million events. ``catch_up`` does
it first and reports progress; the command line shows it on a terminal.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from esmc_licensing import LicenseManagement, cli
from esmc_licensing.testing import stores
from esmc_licensing.testing.bulk import generate_log


@pytest.fixture
def written_in_bulk(tmp_path: Path) -> Path:
    """A SQLite store of about 4,000 events whose views have not seen them."""
    db = tmp_path / "bulk.db"
    app = LicenseManagement(env=stores.sqlite_env(db))
    generate_log(app, events=4000, licenses=40, computers=300)
    app.close()
    return db


def test_r30_catch_up_reports_its_progress_up_to_the_logs_end(written_in_bulk: Path) -> None:
    app = LicenseManagement(env=stores.sqlite_env(written_in_bulk))
    try:
        seen: list[tuple[int, int]] = []
        reached = app.catch_up(lambda done, end: seen.append((done, end)))
        end = app.position
        assert reached == end > 4000
        assert len(seen) > 1  # a batch at a time
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
        assert seen[-1] == (end, end) and {e for _, e in seen} == {end}
        assert len(app.licenses(app.administrator)) == 40
        again: list[tuple[int, int]] = []
        assert app.catch_up(lambda done, end: again.append((done, end))) == end
        assert again == []  # nothing left to apply
    finally:
        app.close()
    reopened = LicenseManagement(env=stores.sqlite_env(written_in_bulk))
    try:
        assert reopened.catch_up() == end  # views already current: their position
    finally:
        reopened.close()


def _terminal() -> tuple[Console, io.StringIO]:
    """The command line's own console (no markup read, R33) on a fake terminal."""
    out = io.StringIO()
    return cli._console_class()(file=out, force_terminal=True, width=100), out


def test_r30_a_command_far_behind_shows_its_catch_up_on_a_terminal(
    written_in_bulk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "CATCH_UP_SHOWN", 500)
    app = LicenseManagement(env=stores.sqlite_env(written_in_bulk))
    try:
        console, out = _terminal()
        cli.catch_up_showing_progress(app, console)
        assert "Bringing the views up to date with the log" in out.getvalue()
        assert "[progress" not in out.getvalue()  # a style name, not text to show
        console, out = _terminal()
        cli.catch_up_showing_progress(app, console)  # up to date: nothing shown
        assert out.getvalue() == ""
    finally:
        app.close()


def test_r30_a_short_catch_up_shows_nothing(written_in_bulk: Path) -> None:
    app = LicenseManagement(env=stores.sqlite_env(written_in_bulk))
    try:
        console, out = _terminal()
        cli.catch_up_showing_progress(app, console)  # 4,000 events: under CATCH_UP_SHOWN
        assert out.getvalue() == ""
        assert len(app.licenses(app.administrator)) == 40
    finally:
        app.close()


def test_r30_a_failed_catch_up_is_left_to_the_command(
    written_in_bulk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``verify-history`` on a damaged store reports the damage itself."""
    app = LicenseManagement(env=stores.sqlite_env(written_in_bulk))
    try:
        def broken(progress: object = None) -> int:
            raise RuntimeError("a damaged row")

        monkeypatch.setattr(app, "catch_up", broken)
        console, out = _terminal()
        cli.catch_up_showing_progress(app, console)  # does not raise
        assert out.getvalue() == ""
    finally:
        app.close()
