"""What the command line shows, as plain data: one row per workflow and the summary line (no rich here).

`portable_wait._table` renders a board with rich; keeping the state apart lets ``--json`` and ``--quiet`` runs,
and tests, use it without a console.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

from ._errors import PortableAPIError, PortableError, WorkflowFailedError
from ._models import Lifecycle, WorkflowStatus
from ._polling import PollEvent
from ._report import outcome_name, outcome_status

__all__ = ["Board", "Row", "plural"]

# Server text can be long (a stack trace in a run's errors); a row keeps enough for the widest terminal.
_ERROR_KEEP = 300
_ID_LINE = 79  # the summary's list of workflows that did not succeed fits an 80-column terminal


def plural(count: int, noun: str) -> str:
    """Return "1 workflow", "2 workflows"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _describe(error: BaseException) -> str:
    # The table's column is narrow: lead with what differs (the status code), not "Portable API answered".
    if isinstance(error, PortableAPIError):
        return _one_line(f"HTTP {error.status_code} {error.message}")
    return _one_line(str(error))


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_KEEP else text[: _ERROR_KEEP - 1] + "…"


@dataclass
class Row:
    """One workflow's line: its last status, its last error, and its outcome once done."""

    workflow_id: int
    status: WorkflowStatus | None = None
    error: str | None = None
    outcome: str = "WAITING"
    elapsed: float = 0.0
    done: bool = False
    polling: bool = False  # a wait's last poll said the wait goes on (``PollEvent.next_delay`` is not None)

    @property
    def state(self) -> str:
        """One word for the narrow table: the outcome once done, else the lifecycle (the disposition of a
        finished run for a one-shot status)."""
        if self.done:
            return self.outcome
        if self.status is None:
            return "…"
        if self.status.lifecycle is Lifecycle.NOT_RUNNING:
            return self.stale or str(self.status.disposition.value)
        return str(self.status.lifecycle.value)

    @property
    def stale(self) -> str | None:
        """``waiting (last: FAILED)`` for a finished run a wait does not count (one before ``after``), else None.

        The server still shows the previous run's result while the wait goes on; showing it bare would read as
        this wait's outcome.
        """
        if self.done or not self.polling or self.status is None:
            return None
        if self.status.lifecycle is not Lifecycle.NOT_RUNNING:
            return None
        return f"waiting (last: {self.status.disposition.value})"


@dataclass
class Board:
    """The rows of a ``wait``, ``demo`` or ``status`` run, fed by poll events and outcomes."""

    ids: list[int]
    started: float = field(default_factory=time.monotonic)
    rows: dict[int, Row] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = {wid: Row(wid) for wid in self.ids}

    def on_poll(self, event: PollEvent) -> None:
        row = self.rows[event.workflow_id]
        row.elapsed = event.elapsed
        row.polling = event.next_delay is not None
        if event.status is not None:
            row.status = event.status
            row.outcome = event.status.lifecycle.value
        if event.error is not None:
            row.error = _describe(event.error)

    def show(self, wid: int, status: WorkflowStatus) -> None:
        """Record a one-shot status (``status``): not an outcome, the run may still be going."""
        row = self.rows[wid]
        row.status = status
        errors = status.all_errors()
        row.error = _one_line(errors[0]) if errors else None

    def finish(self, wid: int, outcome: WorkflowStatus | PortableError) -> None:
        row = self.rows[wid]
        row.done = True
        row.elapsed = time.monotonic() - self.started
        row.outcome = outcome_name(outcome)
        row.status = outcome_status(outcome) or row.status
        if isinstance(outcome, PortableError) and not isinstance(outcome, WorkflowFailedError):
            row.error = _describe(outcome)
        else:
            errors = row.status.all_errors() if row.status else []
            row.error = _one_line(errors[0]) if errors else None

    def shown(self, limit: int | None) -> list[Row]:
        """The rows to show, at most ``limit`` (None: all, in input order).

        Unfinished first, then finished ones that did not succeed, then the successes: when the terminal is too
        short for every row, the final frame still shows every failure it can.
        """
        if limit is None:
            return list(self.rows.values())
        # Refreshed four times a second: pick the rows shown without sorting every workflow.
        return heapq.nsmallest(
            limit, self.rows.values(), key=lambda r: (r.done, r.outcome == "SUCCEEDED", r.workflow_id)
        )

    def elapsed(self) -> float:
        """Seconds since the board was made (the wait started)."""
        return time.monotonic() - self.started

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            key = row.outcome if row.done else "WAITING"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def summary_line(self) -> str:
        """The one line that ends every ``wait`` and ``demo`` run (live table, ``--json`` stderr, Ctrl-C).

        The single place it is built: anything added to the summary goes here.
        """
        parts = [f"{n:,} {name.lower()}" for name, n in sorted(self.counts().items())]
        line = f"{plural(len(self.rows), 'workflow')} in {self.elapsed():.1f}s: " + ", ".join(parts)
        unsuccessful = [r.workflow_id for r in self.rows.values() if r.done and r.outcome != "SUCCEEDED"]
        return line if not unsuccessful else f"{line}\n{_id_list('did not succeed', unsuccessful)}"


def _id_list(label: str, ids: list[int]) -> str:
    """``label: 1, 5, 15`` or, past an 80-column line, ``label: 1, 5, … (7 in all)``."""
    shown: list[str] = []
    for wid in ids:
        if len(f"{label}: ") + len(", ".join([*shown, str(wid)])) + len(f", … ({len(ids):,} in all)") > _ID_LINE:
            break
        shown.append(str(wid))
    if len(shown) == len(ids):
        return f"{label}: {', '.join(shown)}"
    return f"{label}: {', '.join([*shown, '…'])} ({len(ids):,} in all)"
