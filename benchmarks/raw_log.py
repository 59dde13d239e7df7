"""The raw baseline the view and export benchmarks compare with: the events table
read with plain ``sqlite3``, a page at a time (standard library only, so that a
benchmark's own process stays lean)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PAGE = 1000


def pages(db: Path, page: int = PAGE) -> Iterator[list[Any]]:
    """(position, originator id, version, topic, state) rows, ``page`` at a time."""
    con = sqlite3.connect(db)
    try:
        last = 0
        while True:
            rows = con.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                "FROM stored_events WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, page),
            ).fetchall()
            if rows:
                yield rows
            if len(rows) < page:
                return
            last = rows[-1][0]
    finally:
        con.close()
