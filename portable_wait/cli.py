"""The ``portable-wait`` command: a thin layer of parsing and rendering over the library.

Needs the ``cli`` extra (``pip install 'portable-wait[cli]'``) for its tables; without it every command prints
that install command and exits 2.

Exit status of ``wait`` and ``demo``:

====  =====================================================================================
0     every workflow succeeded (``demo``: every outcome matched what the fake server scripted)
1     at least one workflow finished without succeeding (FAILED, never ran, unknown)
2     bad usage: arguments, no ``PORTABLE_API_KEY``, or the ``cli`` extra is not installed
3     at least one wait timed out
4     an API, authentication or network error ended at least one wait
130   interrupted (Ctrl-C)
====  =====================================================================================

When outcomes are mixed, the highest of 4, 3 and 1 wins. ``status`` answers once, with the same codes where they
apply: 0 no workflow's latest run finished without succeeding (running and pending ones included), 1 at least
one did (FAILED, never ran, unknown disposition), 2 bad usage, 4 an error answered for at least one workflow
(4 wins over 1).

Output: on a terminal a table (and for ``wait`` a summary line); with ``--json``, or whenever stdout is not a
terminal, one JSON object per workflow on stdout and the summary on stderr. ``--quiet`` silences what is meant
for people, log lines included (unless ``-v`` is given too): alone it prints nothing at all, piped or not; with
``--json`` the JSON lines are still printed and stderr stays empty. Under a live table, log lines are printed
through its console, above it (without ``-v`` only errors: the table shows each workflow's last error).
The API key is read from ``PORTABLE_API_KEY`` only: a command-line flag would leave it in shell history and
in ``ps`` output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from ._board import Board, plural
from ._client import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, PortableClient
from ._config import DEFAULT_MAX_CONCURRENCY, DEFAULT_POLL, PollPolicy
from ._errors import PortableError
from ._fanout import as_completed
from ._models import Lifecycle, WorkflowStatus
from ._polling import check_after_range
from ._redact import RedactingFilter, Redactor, redacted_output
from ._report import outcome_name, outcome_to_json
from ._telemetry import ClientStats
from ._validate import check_seconds, check_workflow_id, fromisoformat
from ._version import __version__

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
INSTALL_CLI = "pip install 'portable-wait[cli]'"
_DEMO_POLL = PollPolicy(initial=0.5, maximum=3.0, multiplier=1.5, jitter=0.2, outage_tolerance=60.0)
_MAX_PORT = 65_535
_MAX_WORKFLOWS = 100_000
_NOW_LOOK_BACK = 10.0
_LISTED_IDS = 10  # fake-server lists this many IDs in its `wait` line; more become $(seq 1 N)
"""Seconds before the command started that ``--after now`` stands for (see `_parse_after`)."""


class _UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser, commands = _parser()
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        import rich  # noqa: F401  # the tables need it; checked before any work so no command fails halfway
    except ImportError:
        # Before parsing, so a bare `portable-wait` says what is missing rather than "COMMAND is required";
        # --help and --version still work.
        if not {"-h", "--help", "--version"} & set(words):
            print(f"portable-wait: the command line needs the 'cli' extra: {INSTALL_CLI}", file=sys.stderr)
            return EXIT_USAGE
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    _configure_logging(args.verbose, quiet=getattr(args, "quiet", False))
    try:
        if args.command == "fake-server":
            return _run(_fake_server(args))
        if args.command == "demo":
            return _run(_demo(args, _demo_plan(args)))
        client = _make_client(args)
        if args.command == "status":
            return _run(_status(args, client))
        return _run(_wait(args, client, _poll_policy(args), _parse_after(args.after)))
    except _UsageError as exc:
        # The same shape as argparse's own errors: usage line, "portable-wait wait: error: ...", exit 2.
        try:
            commands[args.command].error(str(exc))
        except SystemExit as exit_:
            return int(exit_.code or EXIT_USAGE)
        return EXIT_USAGE  # pragma: no cover - error() always exits


# -- arguments ----------------------------------------------------------------------------------------------


def _positive_id(text: str) -> int:
    try:
        if not text.strip().isascii():  # int() reads any script's digits: "٣" would be workflow 3
            raise ValueError(text)
        return check_workflow_id(int(text))
    except ValueError as exc:
        bound = " at most 2**63-1" if "2**63-1" in str(exc) else ""
        raise argparse.ArgumentTypeError(f"workflow ID must be a positive integer{bound}, got {text!r}") from None


def _seconds(text: str) -> float:
    try:
        return check_seconds(float(text), "a duration")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") from None


def _seconds_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else _seconds(text)


def _int_between(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text) if text.strip().isascii() else low - 1
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low:,} to {high:,}, got {text!r}")
        return value

    return parse


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}")
    return value


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="portable-wait",
        description="Wait for Portable data-integration workflows to finish. "
        f"Needs the 'cli' extra: {INSTALL_CLI} (from a clone: pip install '.[cli]').",
        epilog=f"The API key is read from {API_KEY_ENV}, the API's address from {BASE_URL_ENV} (or --base-url). "
        "Exit status: 0 all succeeded, 1 a workflow did not succeed, 2 bad usage, 3 timed out, "
        "4 API/auth/network error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"portable-wait {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log retries (-v) and every poll (-vv). Without it, warnings go to stderr, but under a live table "
        "only errors show (the table has each workflow's last error); log lines print above the table",
    )
    common.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per workflow on stdout (the default when stdout is not a terminal)",
    )
    common.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="nothing for people: no table, no summary, no log lines (unless -v is given too); "
        "with --json only the JSON lines",
    )

    api = argparse.ArgumentParser(add_help=False)
    api.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help=f"the API's root (default: ${BASE_URL_ENV} if set, else {DEFAULT_BASE_URL}); "
        "http:// only for 127.0.0.1/localhost",
    )
    api.add_argument(
        "--max-concurrency",
        type=int,
        default=DEFAULT_MAX_CONCURRENCY,
        help=f"requests in flight at once (default {DEFAULT_MAX_CONCURRENCY})",
    )
    api.add_argument("--rate-limit", type=float, default=None, help="requests per second at most")
    ids_help = "workflow IDs (positive integers), as shown in Portable's URLs"

    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--timeout", type=_seconds, default=None, help="seconds to wait for each workflow")
    waiting.add_argument(
        "--after",
        default=None,
        metavar="WHEN",
        help="only a run completed after WHEN counts: an ISO 8601 time (no offset: local time) or Unix seconds, "
        'read before triggering: since=$(date -u +%%FT%%TZ); trigger ...; --after "$since". '
        f"'now' means {_NOW_LOOK_BACK:g} s before this command started, so a run triggered just before it "
        f"counts even if it already ended (but so does an earlier run that ended in those {_NOW_LOOK_BACK:g} s)",
    )
    waiting.add_argument(
        "--poll-initial", type=_seconds, default=None, help=f"first poll interval (default {DEFAULT_POLL.initial:g})"
    )
    waiting.add_argument(
        "--poll-max", type=_seconds, default=None, help=f"longest poll interval (default {DEFAULT_POLL.maximum:g})"
    )
    waiting.add_argument(
        "--poll-multiplier", type=float, default=None, help=f"interval growth (default {DEFAULT_POLL.multiplier:g})"
    )
    waiting.add_argument("--outage-tolerance", type=float, default=None, help="seconds of failures to ride out")

    wait = sub.add_parser("wait", parents=[common, api, waiting], help="wait for workflows to finish")
    wait.add_argument("workflow_ids", metavar="ID", nargs="+", type=_positive_id, help=ids_help)
    status = sub.add_parser(
        "status",
        parents=[common, api],
        help="show workflows' current status once",
        epilog="Exit status: 0 no latest run finished without succeeding (running ones included), 1 at least one "
        "did (FAILED, never ran, unknown), 2 bad usage, 4 an error answered for at least one workflow.",
    )
    status.add_argument("workflow_ids", metavar="ID", nargs="+", type=_positive_id, help=ids_help)

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="wait on an embedded fake Portable server (about 20 s; --long about 60 s)",
        description="Wait on an embedded fake Portable server: a few workflows, one failure, a short outage "
        "ridden out, then the summary; every outcome is checked against what the fake was scripted to do.",
    )
    demo.add_argument(
        "--long", action="store_true", help="the longer story: 12 workflows of up to 60 s, 20%% failing, 5%% 503s"
    )
    demo.add_argument(
        "--workflows",
        type=_int_between(1, _MAX_WORKFLOWS),
        default=None,
        metavar="N",
        help="how many workflows (default 6; --long 12)",
    )
    demo.add_argument(
        "--fail-rate",
        type=_share,
        default=None,
        metavar="SHARE",
        help="share that fail, 0 to 1 (default: exactly one; --long 0.2)",
    )
    demo.add_argument("--seed", type=int, default=None, metavar="N", help="random seed, for a repeatable demo")
    demo.add_argument(
        "--max-duration",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds the longest run takes; runs are spread up to it (default 18; --long 60)",
    )
    demo.add_argument(
        "--outage",
        type=_seconds_or_zero,
        default=None,
        metavar="SECONDS",
        help="length of an outage (every answer a 503) that starts 40%% of the way in; 0 for none (default 3)",
    )

    fake = sub.add_parser(
        "fake-server",
        help="serve a fake Portable API for trials with curl",
        description="Serve a fake Portable API on 127.0.0.1 until Ctrl-C, and print the commands to try it.",
    )
    fake.add_argument("-v", "--verbose", action="count", default=0, help="log each request the server answers")
    fake.add_argument(
        "--port",
        type=_int_between(0, _MAX_PORT),
        default=8765,
        metavar="PORT",
        help="TCP port on 127.0.0.1, 0 for any free one (default 8765)",
    )
    fake.add_argument(
        "--workflows",
        type=_int_between(1, _MAX_WORKFLOWS),
        default=10,
        metavar="N",
        help="how many workflows, with IDs from 1 (default 10)",
    )
    fake.add_argument(
        "--seed", type=int, default=None, metavar="N", help="random seed for the workflows' durations and outcomes"
    )
    return parser, {"wait": wait, "status": status, "demo": demo, "fake-server": fake}


def _make_client(args: argparse.Namespace) -> PortableClient:
    if not os.environ.get(API_KEY_ENV, "").strip():
        raise _UsageError(f"no API key: set the {API_KEY_ENV} environment variable (export {API_KEY_ENV}=...)")
    try:
        return PortableClient(base_url=args.base_url, max_concurrency=args.max_concurrency, rate_limit=args.rate_limit)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        if args.base_url is not None and message.startswith("base_url"):
            message = "--base-url" + message.removeprefix("base_url")
        raise _UsageError(message) from None


def _poll_policy(args: argparse.Namespace) -> PollPolicy:
    defaults = DEFAULT_POLL
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
    """Return ``--after`` as an aware datetime: an ISO 8601 time, Unix seconds, or 'now'.

    'now' cannot be the moment this command started: ``trigger && portable-wait wait ID --after now`` reads it
    after the trigger, and a run that fails within a second (bad source credentials) has completed before it,
    so it would never count. 'now' is therefore `_NOW_LOOK_BACK` seconds earlier: a run triggered up to then
    counts even if it is over; the price is that a run which *ended* in those seconds counts too. The exact
    form, a time read before triggering, has neither problem.
    """
    if text is None:
        return None
    value = text.strip()
    if value.lower() == "now":
        return datetime.fromtimestamp(time.time() - _NOW_LOOK_BACK, timezone.utc)
    try:
        if not value.isascii():  # float() reads any script's digits
            raise ValueError(value)
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise _UsageError(f"--after in Unix seconds must be a finite number >= 0, got {text!r}")
        if seconds < _UNIX_AFTER_MIN:  # 20261129 or 2026 is a date typed without dashes, not 1970
            raise _UsageError(
                f"--after {text!r} read as Unix seconds is before 2000-01-01, which cannot be meant; "
                "use ISO 8601 (e.g. 2026-11-29T04:05:06Z, as `date -u +%FT%TZ` prints)"
            )
        try:
            when = datetime.fromtimestamp(seconds, timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise _UsageError(f"--after {text!r} is out of range for a time in Unix seconds") from None
        return _plausible_after(when, text)
    try:
        when = fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        # A time typed without an offset is the user's local time.
        when = when if when.tzinfo is not None else when.astimezone()
    except (ValueError, OverflowError):
        raise _UsageError(
            f"--after must be an ISO 8601 time (e.g. 2026-11-29T04:05:06Z, as `date -u +%FT%TZ` prints), "
            f"Unix seconds (e.g. 1795925106, as `date +%s` prints), or 'now'; got {text!r}"
        ) from None
    return _plausible_after(when, text)


_UNIX_AFTER_MIN = 946_684_800
"""2000-01-01T00:00:00Z in Unix seconds: an --after in Unix seconds before it is a mistyped date."""

_AFTER_FUTURE_SLACK = 300.0
"""Seconds an --after may be ahead of this machine's clock (clock skew); beyond, no run can have completed after
it yet, and the wait could only time out."""


def _plausible_after(when: datetime, text: str) -> datetime:
    try:
        check_after_range(when)
    except ValueError as exc:
        raise _UsageError(f"--after {text!r}: {exc}") from None
    ahead = (when - datetime.now(timezone.utc)).total_seconds()
    if ahead > _AFTER_FUTURE_SLACK:
        raise _UsageError(
            f"--after {text!r} is {ahead:.0f} s in the future (more than {_AFTER_FUTURE_SLACK:.0f} s): no run can "
            "have completed after it yet; give the time you triggered the run, read before triggering"
        )
    return when


class _LogHandler(logging.Handler):
    """Write the library's log lines to stderr, or, while a live table is up, through its console.

    A line written straight to the terminal under a rich ``Live`` display leaves stale copies of the table
    stacked on screen; printed through the live console, it goes above the table, which is redrawn below it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        self.addFilter(RedactingFilter())  # also covers records of child loggers, which skip the logger's filter
        self.console: Console | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if self.console is None:
                print(line, file=sys.stderr, flush=True)  # looked up now: the redacting stream while running
            else:
                from rich.text import Text

                style = (
                    "red" if record.levelno >= logging.ERROR else "yellow" if record.levelno >= logging.WARNING else ""
                )
                self.console.print(Text(line, style=style))
        except Exception:
            self.handleError(record)


_SILENT = logging.CRITICAL + 1


def _configure_logging(verbosity: int, *, quiet: bool = False) -> _LogHandler:
    """Send the ``portable_wait`` logger's records to one `_LogHandler`, at the level the flags ask for.

    No ``-v``: warnings (a retry that ran out, a poll that failed but the wait goes on) on plain stderr; while a
    live table is up only errors, since the table already shows each workflow's last error (see `_wait`).
    ``-v`` adds each retry, ``-vv`` each poll. ``--quiet`` silences the log too, unless ``-v`` is also given:
    asking for the log explicitly wins.
    """
    if quiet and verbosity == 0:
        level = _SILENT
    else:
        level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = _LogHandler()
    logger = logging.getLogger("portable_wait")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return handler


@contextlib.contextmanager
def _logging_through(console: Console, *, verbosity: int) -> Iterator[None]:
    """While a live table is shown on ``console``, print log lines through it; without ``-v``, errors only."""
    handlers = [h for h in logging.getLogger("portable_wait").handlers if isinstance(h, _LogHandler)]
    saved = [(h.console, h.level) for h in handlers]
    for handler in handlers:
        handler.console = console
        if verbosity == 0:
            handler.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for handler, (previous, level) in zip(handlers, saved, strict=True):
            handler.console = previous
            handler.setLevel(level)


# -- running ------------------------------------------------------------------------------------------------


def _run(coro: Any) -> int:
    # Everything printed while running passes the redactor: the key of PORTABLE_API_KEY and of every live client.
    try:
        with redacted_output(Redactor(os.environ.get(API_KEY_ENV, "").strip())):
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


def _exit_code(outcomes: Sequence[WorkflowStatus | PortableError]) -> int:
    names = {outcome_name(o) for o in outcomes}
    if "ERROR" in names:
        return EXIT_ERROR
    if "TIMEOUT" in names:
        return EXIT_TIMEOUT
    if names - {"SUCCEEDED"}:
        return EXIT_FAILED
    return EXIT_OK


def _status_exit_code(results: Sequence[WorkflowStatus | PortableError]) -> int:
    if any(isinstance(r, PortableError) for r in results):
        return EXIT_ERROR
    finished = [r for r in results if isinstance(r, WorkflowStatus) and r.lifecycle is Lifecycle.NOT_RUNNING]
    if any(outcome_name(r) != "SUCCEEDED" for r in finished):
        return EXIT_FAILED
    return EXIT_OK


def _console(file: TextIO) -> Console:
    from ._table import make_console

    return make_console(file)


def _stats_line(stats: ClientStats) -> str:
    """The client's part of the final summary: requests, 429s, retries and mean detection lag."""
    lag = "n/a" if stats.detection_lag_mean is None else f"{stats.detection_lag_mean:.1f}s"
    retries = f"{stats.retries:,} {'retry' if stats.retries == 1 else 'retries'}"
    requests = f"{plural(stats.requests, 'request')} ({stats.rate_limited:,} answered 429)"
    return f"{requests}, {retries}, detection lag mean {lag}"


async def _wait(
    args: argparse.Namespace,
    client: PortableClient,
    poll: PollPolicy,
    after: datetime | None,
    verify: Callable[[dict[int, WorkflowStatus | PortableError], TextIO], int] | None = None,
) -> int:
    """Wait on ``args.workflow_ids``, rendering a live table, JSON lines, or nothing.

    ``verify`` (the demo's check) gets every outcome and where to write its verdict, and decides the exit status.
    """
    from rich.live import Live

    from ._table import render_board

    await _interruptible()
    ids = list(dict.fromkeys(args.workflow_ids))
    board = Board(ids)
    out: TextIO = sys.stdout
    json_mode = args.json or (not out.isatty() and not args.quiet)
    human = not args.quiet  # what is meant for people: the table, the summary, the demo's verdict
    console = _console(sys.stderr if json_mode else out)
    outcomes: dict[int, WorkflowStatus | PortableError] = {}
    interrupted = False
    live = Live(
        get_renderable=lambda: render_board(board, console),
        console=console,
        refresh_per_second=4,
        transient=False,
        vertical_overflow="crop",
    )
    show_live = human and not json_mode
    async with client, contextlib.AsyncExitStack() as stack:
        if show_live:
            live.start()
            stack.enter_context(_logging_through(live.console, verbosity=args.verbose))
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
    if human:
        # Summary first, then the client's figures, in every mode (the live table already ends with the summary).
        if interrupted:
            print(f"interrupted: {board.summary_line()}", file=sys.stderr)
        elif json_mode:
            print(board.summary_line(), file=sys.stderr)
        print(_stats_line(client.stats()), file=sys.stderr if json_mode else out)
    if interrupted:
        return EXIT_INTERRUPTED
    code = _exit_code(list(outcomes.values()))
    if verify is None:
        return code
    return verify(outcomes, sys.stderr if json_mode else out)


async def _status(args: argparse.Namespace, client: PortableClient) -> int:
    ids = list(dict.fromkeys(args.workflow_ids))
    async with client:
        answers = await asyncio.gather(*(client.get_workflow_status(w) for w in ids), return_exceptions=True)
    results: list[WorkflowStatus | PortableError] = []
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, PortableError):
            raise answer
        results.append(answer)
    json_mode = args.json or (not sys.stdout.isatty() and not args.quiet)  # as `_wait`: --quiet alone prints nothing
    if json_mode:
        for wid, result in zip(ids, results, strict=True):
            record = outcome_to_json(wid, result)
            # A one-shot status is not an outcome: the run may still be going. An answer that was an error says
            # so in its "error" object, so no record carries "outcome".
            del record["outcome"]
            print(json.dumps(record), flush=True)
    elif not args.quiet:
        from ._table import render_board

        board = Board(ids)
        for wid, result in zip(ids, results, strict=True):
            if isinstance(result, WorkflowStatus):
                board.show(wid, result)
            else:
                board.finish(wid, result)
        console = _console(sys.stdout)
        console.print(render_board(board, console, live=False, elapsed=False))
    return _status_exit_code(results)


# -- demo ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DemoPlan:
    """What the demo's fake server is scripted to do."""

    workflows: int
    max_duration: float
    fail_rate: float | None  # None: exactly one workflow fails
    fault_rate: float  # share of answers that are random 503s
    outage: float  # seconds during which every answer is a 503
    seed: int | None

    @property
    def min_duration(self) -> float:
        return min(3.0, self.max_duration)

    @property
    def outage_start(self) -> float:
        return 0.4 * self.max_duration

    @property
    def expected_seconds(self) -> float:
        """How long the demo should take: the longest run, then at most one poll interval to notice it."""
        return self.max_duration + _DEMO_POLL.maximum


def _demo_plan(args: argparse.Namespace) -> _DemoPlan:
    def pick(value: Any, short: Any, long: Any) -> Any:
        return value if value is not None else (long if args.long else short)

    return _DemoPlan(
        workflows=pick(args.workflows, 6, 12),
        max_duration=pick(args.max_duration, 18.0, 60.0),
        fail_rate=pick(args.fail_rate, None, 0.2),
        fault_rate=0.05 if args.long else 0.0,
        outage=pick(args.outage, 3.0, 3.0),
        seed=args.seed,
    )


async def _demo(args: argparse.Namespace, plan: _DemoPlan) -> int:
    from .testing import FakePortable

    rng = random.Random(plan.seed)
    fake = FakePortable(api_key=secrets.token_urlsafe(16), seed=plan.seed)
    async with fake:
        ids = list(range(568971, 568971 + plan.workflows))
        # Durations spread evenly up to max_duration, so one finishes every few seconds and the longest sets
        # how long the demo takes; the seed decides which workflow gets which, and which fail.
        step = (plan.max_duration - plan.min_duration) / max(plan.workflows - 1, 1)
        durations = [plan.min_duration + step * i for i in range(plan.workflows)]
        rng.shuffle(durations)
        failing = {rng.choice(ids)} if plan.fail_rate is None else {w for w in ids if rng.random() < plan.fail_rate}
        for wid, duration in zip(ids, durations, strict=True):
            pending = duration * rng.uniform(0.05, 0.3)
            failed = wid in failing
            fake.add_workflow(
                wid,
                pending=pending,
                running=duration - pending,
                outcome="FAILED" if failed else "SUCCEEDED",
                errors=[f"destination rejected batch {rng.randint(1, 99)}: schema mismatch in column 'amount'"]
                if failed
                else (),
                resources={name: rng.randint(100, 500_000) for name in ("accounts", "contacts", "events")},
            )
        if plan.outage:
            fake.outage(plan.outage_start, plan.outage)
        if plan.fault_rate:
            fake.add_fault("503", rate=plan.fault_rate)
        expected = {wid: fake.workflows[wid].final_disposition() for wid in ids}
        if not args.quiet:
            faults = [f"a {plan.outage:g} s outage at {plan.outage_start:g} s"] if plan.outage else []
            faults += [f"{plan.fault_rate:.0%} random 503s"] if plan.fault_rate else []
            # Two short lines: one would wrap on an 80-column terminal.
            print(f"demo: a fake Portable at {fake.base_url}", file=sys.stderr)
            print(
                f"demo: {plural(len(ids), 'workflow')} of up to {plan.max_duration:g} s; "
                f"{plural(len(failing), 'failure')}; {', '.join(faults) or 'no faults'}",
                file=sys.stderr,
            )
        args.workflow_ids = ids
        args.timeout = None
        client = fake.client()

        def verify(outcomes: dict[int, WorkflowStatus | PortableError], file: TextIO) -> int:
            faults = sum(1 for r in fake.requests if r.fault is not None)
            return _check_demo(expected, outcomes, quiet=args.quiet, faults=faults, file=file)

        return await _wait(args, client, _DEMO_POLL, None, verify)


def _check_demo(
    expected: dict[int, str],
    outcomes: dict[int, WorkflowStatus | PortableError],
    *,
    quiet: bool,
    faults: int,
    file: TextIO,
) -> int:
    """Compare every outcome with what the fake server was scripted to do; exit 0 only if all match."""
    wrong = [wid for wid, name in expected.items() if wid not in outcomes or outcome_name(outcomes[wid]) != name]
    if not quiet:
        failures = sum(1 for name in expected.values() if name != "SUCCEEDED")
        ridden = f"; {plural(faults, 'fault')} ridden out" if faults else ""
        message = (
            f"demo: all {len(expected)} outcomes match the script ({plural(failures, 'failure')}{ridden})"
            if not wrong
            else f"demo: outcomes differ from the script for workflows {wrong}"
        )
        print(message, file=file)
    return EXIT_OK if not wrong else EXIT_FAILED


async def _fake_server(args: argparse.Namespace) -> int:
    from .testing import FakePortable

    await _interruptible()
    key = secrets.token_urlsafe(16)
    fake = FakePortable(api_key=key, port=args.port, seed=args.seed)
    try:
        await fake.start()
    except OSError as exc:
        hint = "; --port 0 picks a free one" if args.port else ""
        raise _UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}{hint}") from None
    ids = fake.populate(args.workflows, first_id=1)
    span = f"workflow {ids[0]}" if len(ids) == 1 else f"workflows {ids[0]}..{ids[-1]}"
    # Every line fits 80 columns, so it can be copied whole; the IDs are the ones served (1..N).
    every = " ".join(map(str, ids)) if len(ids) <= _LISTED_IDS else f"$(seq {ids[0]} {ids[-1]})"
    print(f"fake Portable API at {fake.base_url} with {span}")
    print(f"  export {API_KEY_ENV}={key}")
    print(f"  export {BASE_URL_ENV}={fake.base_url}")
    print(f'  curl -H "Authorization: Bearer ${API_KEY_ENV}" \\')
    print(f'       "${BASE_URL_ENV}/v2/workflows/{ids[0]}/status"')
    print(f"  portable-wait wait {every}")
    print("Ctrl-C stops it.", flush=True)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
    finally:
        await fake.close()
    return EXIT_OK
