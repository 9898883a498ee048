"""The ``portable-wait`` command: a thin layer of parsing and rendering over the library.

Exit status (``wait`` and ``demo``; ``status`` uses 0, 2 and 4):

====  =====================================================================================
0     every workflow succeeded
1     at least one workflow finished without succeeding (FAILED, never ran, unknown)
2     bad usage: arguments, or no ``PORTABLE_API_KEY``
3     at least one wait timed out
4     an API, authentication or network error ended at least one wait
130   interrupted (Ctrl-C)
====  =====================================================================================

When outcomes are mixed, the highest of 4, 3 and 1 wins. The API key is read from ``PORTABLE_API_KEY`` only:
a command-line flag would leave it in shell history and in ``ps`` output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ._client import API_KEY_ENV, DEFAULT_BASE_URL, PortableClient
from ._config import PollPolicy
from ._errors import PortableError, WorkflowFailedError
from ._fanout import as_completed
from ._models import WorkflowStatus
from ._polling import PollEvent
from ._report import outcome_name, outcome_status, outcome_to_json
from ._telemetry import ClientStats
from ._version import __version__

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
_DEMO_POLL = PollPolicy(initial=0.5, maximum=3.0, multiplier=1.5, jitter=0.2, outage_tolerance=60.0)
_MAX_ROWS = 40


class _UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    _configure_logging(args.verbose)
    try:
        if args.command == "fake-server":
            return _run(_fake_server(args))
        if args.command == "demo":
            return _run(_demo(args))
        client = _make_client(args)
        if args.command == "status":
            return _run(_status(args, client))
        return _run(_wait(args, client, _poll_policy(args), _parse_after(args.after)))
    except _UsageError as exc:
        print(f"portable-wait: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


# -- arguments ----------------------------------------------------------------------------------------------


def _positive_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"workflow ID must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"workflow ID must be a positive integer, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portable-wait",
        description="Wait for Portable data-integration workflows to finish.",
        epilog=f"The API key is read from {API_KEY_ENV}. Exit status: 0 all succeeded, 1 a workflow did not "
        "succeed, 2 bad usage, 3 timed out, 4 API/auth/network error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"portable-wait {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="log retries (-v) and every poll (-vv)")
    common.add_argument("--json", action="store_true", help="one JSON object per workflow on stdout")
    common.add_argument("--quiet", "-q", action="store_true", help="no table or summary; only the exit status")

    api = argparse.ArgumentParser(add_help=False)
    api.add_argument("--base-url", default=os.environ.get("PORTABLE_BASE_URL", DEFAULT_BASE_URL))
    api.add_argument("--max-concurrency", type=int, default=10, help="requests in flight at once (default 10)")
    api.add_argument("--rate-limit", type=float, default=None, help="requests per second at most")

    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--timeout", type=_seconds, default=None, help="seconds to wait for each workflow")
    waiting.add_argument("--after", default=None, help="ISO time the runs were triggered, or 'now'")
    waiting.add_argument("--poll-initial", type=_seconds, default=None, help="first poll interval (default 2)")
    waiting.add_argument("--poll-max", type=_seconds, default=None, help="longest poll interval (default 30)")
    waiting.add_argument("--poll-multiplier", type=float, default=None, help="interval growth (default 1.5)")
    waiting.add_argument("--outage-tolerance", type=float, default=None, help="seconds of failures to ride out")

    wait = sub.add_parser("wait", parents=[common, api, waiting], help="wait for workflows to finish")
    wait.add_argument("workflow_ids", metavar="ID", nargs="+", type=_positive_id)
    status = sub.add_parser("status", parents=[common, api], help="show workflows' current status once")
    status.add_argument("workflow_ids", metavar="ID", nargs="+", type=_positive_id)

    demo = sub.add_parser("demo", parents=[common], help="wait on an embedded fake Portable server")
    demo.add_argument("--workflows", type=int, default=12, help="how many workflows (default 12)")
    demo.add_argument("--fail-rate", type=float, default=0.2, help="share that fail (default 0.2)")
    demo.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable demo")
    demo.add_argument("--max-duration", type=_seconds, default=60.0, help="longest run, seconds (default 60)")

    fake = sub.add_parser("fake-server", help="serve a fake Portable API for trials with curl")
    fake.add_argument("-v", "--verbose", action="count", default=0)
    fake.add_argument("--port", type=int, default=8765)
    fake.add_argument("--workflows", type=int, default=10)
    fake.add_argument("--seed", type=int, default=None)
    return parser


def _make_client(args: argparse.Namespace) -> PortableClient:
    try:
        return PortableClient(base_url=args.base_url, max_concurrency=args.max_concurrency, rate_limit=args.rate_limit)
    except (TypeError, ValueError) as exc:
        raise _UsageError(str(exc)) from None


def _poll_policy(args: argparse.Namespace) -> PollPolicy:
    defaults = PollPolicy()
    try:
        return PollPolicy(
            initial=args.poll_initial or defaults.initial,
            maximum=args.poll_max or max(defaults.maximum, args.poll_initial or 0),
            multiplier=args.poll_multiplier if args.poll_multiplier is not None else defaults.multiplier,
            outage_tolerance=(
                args.outage_tolerance if args.outage_tolerance is not None else defaults.outage_tolerance
            ),
        )
    except (TypeError, ValueError) as exc:
        raise _UsageError(str(exc)) from None


def _parse_after(text: str | None) -> datetime | None:
    if text is None:
        return None
    if text.strip().lower() == "now":
        return datetime.now(timezone.utc)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _UsageError(f"--after must be an ISO 8601 time or 'now', got {text!r}") from None
    # A time typed without an offset is the user's local time.
    return when if when.tzinfo is not None else when.astimezone()


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("portable_wait")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


# -- running ------------------------------------------------------------------------------------------------


def _run(coro: Any) -> int:
    try:
        result: int = asyncio.run(coro)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return result


async def _interruptible() -> None:
    """Make Ctrl-C (and SIGTERM) cancel the main task, so it can clean up and print a summary."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, task.cancel)


@dataclass
class _Row:
    workflow_id: int
    status: WorkflowStatus | None = None
    error: str | None = None
    outcome: str = "WAITING"
    elapsed: float = 0.0
    done: bool = False


@dataclass
class _Board:
    """What the live table shows, fed by poll events and outcomes."""

    ids: list[int]
    started: float = field(default_factory=time.monotonic)
    rows: dict[int, _Row] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = {wid: _Row(wid) for wid in self.ids}

    def on_poll(self, event: PollEvent) -> None:
        row = self.rows[event.workflow_id]
        row.elapsed = event.elapsed
        if event.status is not None:
            row.status = event.status
            row.outcome = event.status.lifecycle.value
        if event.error is not None:
            row.error = _short(str(event.error))

    def finish(self, wid: int, outcome: WorkflowStatus | PortableError) -> None:
        row = self.rows[wid]
        row.done = True
        row.elapsed = time.monotonic() - self.started
        row.outcome = outcome_name(outcome)
        row.status = outcome_status(outcome) or row.status
        if isinstance(outcome, PortableError) and not isinstance(outcome, WorkflowFailedError):
            row.error = _short(str(outcome))
        else:
            errors = row.status.all_errors() if row.status else []
            row.error = _short(errors[0]) if errors else None

    def table(self) -> Group:
        table = Table(expand=False, header_style="bold")
        for name, justify in (
            ("workflow", "right"),
            ("lifecycle", "left"),
            ("disposition", "left"),
            ("extracted", "right"),
            ("analyzed", "right"),
            ("loaded", "right"),
            ("elapsed", "right"),
            ("last error", "left"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        # Refreshed four times a second: pick the rows shown without sorting every workflow.
        shown = heapq.nsmallest(_MAX_ROWS, self.rows.values(), key=lambda r: (r.done, r.workflow_id))
        for row in shown:
            status = row.status
            table.add_row(
                str(row.workflow_id),
                status.lifecycle.value if status else "…",
                Text(
                    row.outcome if row.done else (status.disposition.value if status else "…"),
                    style=_STYLES.get(row.outcome, ""),
                ),
                f"{status.records_extracted:,}" if status else "",
                f"{status.records_analyzed:,}" if status else "",
                f"{status.records_loaded:,}" if status else "",
                f"{row.elapsed if row.done else time.monotonic() - self.started:5.1f}s",
                Text(row.error or "", style="red" if row.error else ""),
            )
        parts: list[Any] = [table]
        if len(self.rows) > _MAX_ROWS:
            parts.append(Text(f"… and {len(self.rows) - _MAX_ROWS} more"))
        parts.append(Text(self.summary_line()))
        return Group(*parts)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            key = row.outcome if row.done else "WAITING"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def summary_line(self) -> str:
        parts = [f"{n} {name.lower()}" for name, n in sorted(self.counts().items())]
        return f"{len(self.rows)} workflows in {time.monotonic() - self.started:.1f}s: " + ", ".join(parts)


_STYLES = {"SUCCEEDED": "green", "FAILED": "bold red", "TIMEOUT": "yellow", "ERROR": "bold red"}


def _exit_code(outcomes: Sequence[WorkflowStatus | PortableError]) -> int:
    names = {outcome_name(o) for o in outcomes}
    if "ERROR" in names:
        return EXIT_ERROR
    if "TIMEOUT" in names:
        return EXIT_TIMEOUT
    if names - {"SUCCEEDED"}:
        return EXIT_FAILED
    return EXIT_OK


def _stats_line(stats: ClientStats) -> str:
    """The client's part of the final summary: requests, 429s, retries and mean detection lag."""
    lag = "n/a" if stats.detection_lag_mean is None else f"{stats.detection_lag_mean:.1f}s"
    return (
        f"{stats.requests} requests ({stats.rate_limited} answered 429), {stats.retries} retries, "
        f"detection lag mean {lag}"
    )


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _wait(
    args: argparse.Namespace,
    client: PortableClient,
    poll: PollPolicy,
    after: datetime | None,
    expected: dict[int, str] | None = None,
) -> int:
    """Wait on ``args.workflow_ids``, rendering a live table, JSON lines, or nothing."""
    await _interruptible()
    ids = list(dict.fromkeys(args.workflow_ids))
    board = _Board(ids)
    out: TextIO = sys.stdout
    json_mode = args.json or (not out.isatty() and not args.quiet)
    console = Console(file=sys.stderr if json_mode else out)
    outcomes: dict[int, WorkflowStatus | PortableError] = {}
    interrupted = False
    live = Live(get_renderable=board.table, console=console, refresh_per_second=4, transient=False)
    show_live = not (json_mode or args.quiet)
    async with client:
        if show_live:
            live.start()
        try:
            async with contextlib.aclosing(
                as_completed(client, ids, timeout=args.timeout, poll=poll, after=after, on_poll=board.on_poll)
            ) as results:
                async for wid, outcome in results:
                    outcomes[wid] = outcome
                    board.finish(wid, outcome)
                    if json_mode:
                        print(json.dumps(outcome_to_json(wid, outcome)), file=out, flush=True)
        except asyncio.CancelledError:
            interrupted = True
        finally:
            if show_live:
                live.stop()
    if not args.quiet:
        print(_stats_line(client.stats()), file=sys.stderr if json_mode else out)
    if interrupted:
        if not args.quiet:
            print(f"interrupted: {board.summary_line()}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if json_mode and not args.quiet:
        print(board.summary_line(), file=sys.stderr)  # the live table already ends with it
    code = _exit_code(list(outcomes.values()))
    if expected is not None:
        wrong = [wid for wid, name in expected.items() if outcome_name(outcomes[wid]) != name]
        message = (
            f"demo: all {len(expected)} outcomes match what the fake server scripted"
            if not wrong
            else f"demo: outcomes differ from the script for workflows {wrong}"
        )
        print(message, file=sys.stderr if json_mode else out)
        return EXIT_OK if not wrong else EXIT_FAILED
    return code


async def _status(args: argparse.Namespace, client: PortableClient) -> int:
    ids = list(dict.fromkeys(args.workflow_ids))
    async with client:
        results = await asyncio.gather(*(client.get_workflow_status(w) for w in ids), return_exceptions=True)
    board = _Board(ids)
    code = EXIT_OK
    for wid, result in zip(ids, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, PortableError):
            raise result
        if isinstance(result, PortableError):
            code = EXIT_ERROR
            board.finish(wid, result)
        else:
            board.rows[wid].status = result
        if args.json:
            record = outcome_to_json(wid, result)
            if isinstance(result, WorkflowStatus):
                del record["outcome"]  # a one-shot status is not an outcome: the run may still be going
            print(json.dumps(record))
    if not args.json and not args.quiet:
        Console().print(board.table().renderables[0])
    return code


async def _demo(args: argparse.Namespace) -> int:
    from .testing import FakePortable

    if not 0 <= args.fail_rate <= 1:
        raise _UsageError("--fail-rate must be between 0 and 1")
    if not 1 <= args.workflows <= 100_000:
        raise _UsageError("--workflows must be between 1 and 100000")
    fake = FakePortable(api_key=secrets.token_urlsafe(16), seed=args.seed)
    async with fake:
        ids = fake.populate(
            args.workflows,
            first_id=568971,
            min_duration=min(3.0, args.max_duration),
            max_duration=args.max_duration,
            fail_rate=args.fail_rate,
        )
        fake.add_fault("503", rate=0.05)
        expected = {wid: fake.workflows[wid].final_disposition() for wid in ids}
        if not args.quiet:
            print(
                f"demo: {len(ids)} workflows on a fake Portable at {fake.base_url} (5% of answers are 503s), "
                f"polling every {_DEMO_POLL.initial:g}-{_DEMO_POLL.maximum:g} s",
                file=sys.stderr,
            )
        args.workflow_ids = ids
        args.timeout = None
        client = fake.client()
        return await _wait(args, client, _DEMO_POLL, None, expected)


async def _fake_server(args: argparse.Namespace) -> int:
    from .testing import FakePortable

    await _interruptible()
    key = secrets.token_urlsafe(16)
    fake = FakePortable(api_key=key, port=args.port, seed=args.seed)
    try:
        await fake.start()
    except OSError as exc:
        raise _UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    ids = fake.populate(args.workflows, first_id=1)
    print(f"fake Portable API at {fake.base_url} with workflows {ids[0]}..{ids[-1]}")
    print(f"  export {API_KEY_ENV}={key} PORTABLE_BASE_URL={fake.base_url}")
    print(f"  curl -H 'Authorization: Bearer {key}' {fake.base_url}/v2/workflows/{ids[0]}/status")
    print(f"  portable-wait wait {ids[0]} {ids[-1]}")
    print("Ctrl-C stops it.", flush=True)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
    finally:
        await fake.close()
    return EXIT_OK
