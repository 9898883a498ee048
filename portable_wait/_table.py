"""The command line's tables, rendered with rich: the only module that imports it (the ``cli`` extra).

Designed for an 80x24 terminal first. Every value is shown whole or not at all: the columns are laid out from
their content's natural width, and when they do not fit the less important ones give way (analyzed, then
extracted, then lifecycle and disposition merge into one ``state`` column, then loaded). The last error takes
what width is left, on one line, cut with an ellipsis. A live table shows as many rows as the terminal has
lines for, unfinished workflows first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ._board import Board, Row

__all__ = ["make_console", "render_board"]

_STYLES = {
    "SUCCEEDED": "green",
    "FAILED": "bold red",
    "TIMEOUT": "yellow",
    "ERROR": "bold red",
    "RUNNING": "cyan",
    "PENDING": "cyan",
}
_ERROR_MIN = 25  # narrower than this an error is unreadable: drop a column instead
_GAP = 3  # box.SIMPLE_HEAD without edges: a space of padding either side of a blank rule between columns
_LINES_AROUND_ROWS = 5  # header, its rule, "… and N more", the summary, the line the cursor sits on


@dataclass(frozen=True)
class _Column:
    header: str
    justify: Literal["left", "right"]
    cell: Callable[[Row], str]


def _count(attribute: str) -> Callable[[Row], str]:
    def cell(row: Row) -> str:
        return f"{getattr(row.status, attribute):,}" if row.status is not None else ""

    return cell


def _lifecycle(row: Row) -> str:
    return row.status.lifecycle.value if row.status is not None else "…"


def _disposition(row: Row) -> str:
    if row.done:
        return row.outcome
    if row.stale:
        return row.stale
    return row.status.disposition.value if row.status is not None else "…"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


_WORKFLOW = _Column("workflow", "right", lambda r: str(r.workflow_id))
_STATE = _Column("state", "left", lambda r: r.state)
_LIFECYCLE = _Column("lifecycle", "left", _lifecycle)
_DISPOSITION = _Column("disposition", "left", _disposition)
_EXTRACTED = _Column("extracted", "right", _count("records_extracted"))
_ANALYZED = _Column("analyzed", "right", _count("records_analyzed"))
_LOADED = _Column("loaded", "right", _count("records_loaded"))

# Widest first; the first layout whose columns fit whole, leaving room for the error, is used.
_LAYOUTS: tuple[tuple[_Column, ...], ...] = (
    (_WORKFLOW, _LIFECYCLE, _DISPOSITION, _EXTRACTED, _ANALYZED, _LOADED),
    (_WORKFLOW, _STATE, _EXTRACTED, _ANALYZED, _LOADED),
    (_WORKFLOW, _STATE, _EXTRACTED, _LOADED),
    (_WORKFLOW, _STATE, _LOADED),
    (_WORKFLOW, _STATE),
)


def render_board(board: Board, console: Console, *, live: bool = True, elapsed: bool = True) -> RenderableType:
    """Return the table (and, for a live one, the summary line) sized for ``console``.

    Args:
        board: What to show.
        console: Where it will be shown: its width picks the columns, its height (when ``live``) the rows.
        live: A ``wait``/``demo`` table: rows capped by the terminal's height, summary line below.
            False for ``status``: every row, no summary.
        elapsed: Show the ``time`` column (seconds since the wait started, or until the workflow finished).
    """
    summary = board.summary_line()
    limit = max(3, console.size.height - _LINES_AROUND_ROWS - summary.count("\n")) if live else None
    rows = board.shown(limit)
    now = board.elapsed()
    time_column = [_Column("time", "right", lambda r: _duration(r.elapsed if r.done else now))] if elapsed else []
    width = console.size.width
    # Room for the errors there are: with none to show, the header is all the last column needs.
    error_need = min(_ERROR_MIN, max([len("last error"), *(len(r.error) for r in rows if r.error)]))
    for layout in _LAYOUTS:
        columns = [*layout, *time_column]
        cells = [[column.cell(row) for column in columns] for row in rows]
        natural = [max([len(column.header), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]
        room = width - sum(n + _GAP for n in natural)
        if room >= error_need or layout is _LAYOUTS[-1]:
            break
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold", expand=False)
    for column, size in zip(columns, natural, strict=True):
        table.add_column(column.header, justify=column.justify, no_wrap=True, min_width=size)
    error_width = max(room, len("last error"))
    table.add_column("last error", no_wrap=True, overflow="ellipsis", max_width=error_width)
    for row, line in zip(rows, cells, strict=True):
        styled: list[RenderableType] = [
            Text(value, style=_STYLES.get(value, "")) if column in (_STATE, _DISPOSITION, _LIFECYCLE) else value
            for column, value in zip(columns, line, strict=True)
        ]
        error = _ellipsis(row.error or "", error_width)
        table.add_row(*styled, Text(error, style="red", no_wrap=True, overflow="ellipsis"))
    if not live:
        return table
    parts: list[RenderableType] = [table]
    if len(rows) < len(board.rows):
        parts.append(Text(f"… and {len(board.rows) - len(rows):,} more"))
    parts.append(Text(summary))
    return Group(*parts)


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def make_console(file: TextIO) -> Console:
    """A console writing to ``file`` (stdout, or stderr when stdout carries JSON)."""
    return Console(file=file)
