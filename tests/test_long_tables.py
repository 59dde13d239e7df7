"""Long tables are laid out without Rich's per-cell machinery, and print the same.

``esmc-licensing licenses`` over 10,000 licenses took 7 s to print, nearly all
of it in Rich laying out cells one by one. When every cell fits on one line,
:class:`esmc_licensing.long_tables.LongTable` makes the rows after the first
itself; these tests hold it to Rich's own output, character for character and
colour for colour (R33: what reaches a terminal is escaped the same way).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text

from esmc_licensing import cli, long_tables
from esmc_licensing.cli import Column, fitted_table

_WORDS = st.text(
    alphabet=st.sampled_from([*"abcXYZ019 -:./", "\x1b", "\u202e", "é", "世", "😀", "\n"]),
    max_size=40,
)
_CELLS = _WORDS | st.builds(
    lambda s, style: Text(s, style=style),
    st.text(alphabet="abc OK", max_size=30),
    st.sampled_from(["", "green", "bold red", "bold white on red"]),
) | st.sampled_from([":smile:", "10:45:11", "a :thumbs_up: b"])


def _printed(table: Any, width: int, colour: bool) -> str:
    console = cli._console_class()(
        width=width, highlight=False, force_terminal=colour,
        color_system="truecolor" if colour else None,
    )
    with console.capture() as captured:  # printed as the command line prints it
        console.print(table, crop=not isinstance(table, long_tables.LongTable))
    return captured.get()


def _both(columns: list[Column], rows: list[list[Any]], width: int, colour: bool,
          monkeypatch: pytest.MonkeyPatch, title: str | None = None) -> tuple[Any, str, str]:
    console = cli._console_class()(width=width, highlight=False)
    monkeypatch.setattr(long_tables, "LONG", 10**9)
    by_rich = _printed(fitted_table(columns, rows, title=title, console=console), width, colour)
    monkeypatch.setattr(long_tables, "LONG", 2)
    table = fitted_table(columns, rows, title=title, console=console)
    return table, _printed(table, width, colour), by_rich


@settings(max_examples=60, deadline=None)
@given(
    headers=st.lists(st.sampled_from(["Name", "ID", "Status", "Tags", "Owner"]),
                     min_size=1, max_size=4),
    data=st.data(),
    width=st.integers(20, 140),
    colour=st.booleans(),
    titled=st.booleans(),
)
def test_r33_a_long_table_prints_what_rich_prints(
    headers: list[str], data: st.DataObject, width: int, colour: bool, titled: bool
) -> None:
    columns = [Column(h, drop=i, no_wrap=h == "ID") for i, h in enumerate(headers)]
    rows = data.draw(st.lists(st.lists(_CELLS, min_size=len(columns), max_size=len(columns)),
                              min_size=2, max_size=6))
    with pytest.MonkeyPatch.context() as monkeypatch:
        _, fast, by_rich = _both(columns, rows, width, colour, monkeypatch,
                                 title="Licenses" if titled else None)
    assert fast == by_rich


def test_r33_a_long_table_of_one_line_cells_is_laid_out_here_and_prints_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    columns = [Column("Public ID", no_wrap=True), Column("Owner"),
               Column("Status", no_wrap=True)]
    rows = [[f"AB{i}-CDE-FGH", f"Company {i} \x1b[31m", Text("OK", style="bold green")]
            for i in range(60)]
    for colour in (False, True):
        table, fast, by_rich = _both(columns, rows, 100, colour, monkeypatch, title="Licenses")
        assert isinstance(table, long_tables.LongTable)
        assert fast == by_rich
        assert fast.count("\n") == 60 + 5  # the title, three lines of head, the bottom
        assert "\\x1b[31m" in fast  # escaped (R33), as Rich's rows have it


def test_a_long_table_with_cells_to_wrap_is_laid_out_here_and_prints_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As ``computers`` prints its products: wrapped between words."""
    columns = [Column("Name"), Column("Products"), Column("State", no_wrap=True)]
    rows = [[f"pc-{i}", "ESET Endpoint Security activated with 000-00L-L48, valid until "
             f"2026-11-{i % 28 + 1:02d} " * (i % 3), Text("FAILED", style="bold red")]
            for i in range(60)]
    for colour in (False, True):
        table, fast, by_rich = _both(columns, rows, 60, colour, monkeypatch)
        assert isinstance(table, long_tables.LongTable)
        assert fast == by_rich
        assert fast.count("\n") > 60 + 4  # rows of several lines


def test_a_table_with_a_line_break_or_an_emoji_code_is_left_to_rich(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(long_tables, "LONG", 2)
    broken = fitted_table([Column("Reason")], [["one\ntwo"], ["short"]],
                          console=cli._console_class()(width=40))
    emoji = fitted_table([Column("Owner")], [[":smile:"], ["plain"]],
                         console=cli._console_class()(width=40))
    assert not isinstance(broken, long_tables.LongTable)
    assert not isinstance(emoji, long_tables.LongTable)
