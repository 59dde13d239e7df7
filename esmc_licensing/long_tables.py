"""Tables of thousands of rows, printed in a fraction of the time Rich takes.

Rich lays out every cell of a table through its general machinery (padding,
wrapping, cropping: about 0.7 ms a row of eight cells), so ``licenses`` over
10,000 licenses took 7 s to print. When no cell of a table needs wrapping --
every cell is one line no wider than its column, the usual case -- each row
is one line whose layout is known: Rich renders the title, the header, the
first row and the caption (so the look stays Rich's own), and the other rows
are made here in the same form. A test compares the two renderings, in plain
text and in colour, on random tables.

Imported only by the command line's table output, with Rich.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from rich._emoji_replace import _emoji_replace
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from .domain.values import escape_controls

#: tables of fewer rows are left to Rich as they are
LONG = 50


def plain_cell(cell: Any) -> str | None:
    """The text a cell shows, when it is one that can be laid out here: a ``str``
    (controls escaped as the console does, R33) or a ``Text`` of one style, on
    one line. A ``str`` holding an emoji code (``:smile:``) is left to Rich,
    which shows the emoji."""
    if type(cell) is str:
        text = escape_controls(cell, keep_newlines=True)
        if ":" in text and _emoji_replace(text) != text:
            return None
    elif isinstance(cell, Text) and not cell.spans:
        text = cell.plain
    else:
        return None
    return None if "\n" in text or "\r" in text else text


def measure(text: str) -> tuple[int, int]:
    """Rich's measurement of a one-line cell showing ``text`` (its longest word,
    its width), without rendering it."""
    width = len if text.isascii() else cell_len  # an ASCII character is one cell
    most = width(text)
    words = text.split()
    least = max(map(width, words)) if words else most
    least = min(max(0, least), most)
    least, most = min(least, 10_000), min(most, 10_000)
    if most < 1:
        return 0, 0
    return least, most


class LongTable:
    """A Rich table whose rows after the first are laid out here (see the module).

    Every line it yields fits the console, so it may be printed with
    ``crop=False`` (cropping looks at every segment of every line again).
    """

    def __init__(
        self, table: Table, widths: Sequence[int], rest: list[list[tuple[Any, str]]]
    ) -> None:
        self.table = table  # with its first row only
        self.widths = list(widths)
        #: the other rows: each cell with the text it shows (:func:`plain_cell`)
        self.rest = rest

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        widths = self.widths
        lines = console.render_lines(self.table, options, pad=False, new_lines=False)
        texts = ["".join(s.text for s in line) for line in lines]
        head = next((i for i, t in enumerate(texts) if t.startswith("┡")), None)
        bottom = next((i for i in range(len(texts) - 1, -1, -1) if texts[i].startswith("└")),
                      None)
        first = lines[head + 1] if head is not None and head + 1 < len(lines) else []
        if (
            head is None
            or bottom is None
            or bottom <= head + 1
            or sum(w + 3 for w in widths) + 1 > options.max_width
            or len(first) != 1 + 4 * len(widths)
            or any(first[i] != first[0] for i in range(0, len(first), 4))
        ):  # not the layout expected (Rich narrowed the table, say): Rich's, whole
            yield from console.render(self._whole(), options)
            return
        new_line = Segment.line()
        for line in lines[:bottom]:
            yield from line
            yield new_line
        edge, space = first[0], Segment(" ")
        get_style = console.get_style
        for row in self.rest:
            cells: list[list[Segment]] = []
            for (cell, text), width in zip(row, widths, strict=True):
                style = cell.style if isinstance(cell, Text) else None
                size = len(text) if text.isascii() else cell_len(text)
                if size <= width:
                    cells.append([Segment(
                        text + " " * (width - size), get_style(style) if style else None
                    )])
                else:  # wrapped between words, as Rich wraps it
                    wrapped = Text(text, style=style or "").wrap(
                        console, width, justify="left", overflow="ellipsis"
                    )
                    cells.append([Segment(line.plain, get_style(line.style) if line.style
                                          else None) for line in wrapped])
            for k in range(max(map(len, cells))):
                yield edge
                for line_segments, width in zip(cells, widths, strict=True):
                    yield space
                    yield (line_segments[k] if k < len(line_segments)
                           else Segment(" " * width))
                    yield space
                    yield edge
                yield new_line
        for line in lines[bottom:]:
            yield from line
            yield new_line

    def _whole(self) -> Table:
        table = self.table
        for row in self.rest:
            table.add_row(*(cell for cell, _ in row))
        self.rest = []
        return table


__all__ = ["LONG", "LongTable", "measure", "plain_cell"]
