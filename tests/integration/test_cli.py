"""The portable-wait command against the fake server: in this process through main() (the `cli` fixture), and as a
real subprocess where a process is the point (the entry point's exit status, Ctrl-C, a key kept out of its output)."""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from rich.console import Console

from portable_wait import PollEvent, WorkflowFailedError, WorkflowStatus
from portable_wait._board import Board
from portable_wait._table import render_board
from portable_wait.cli import _demo_plan, _parser, main
from portable_wait.testing import FakePortable

from .conftest import FAST, RunCli


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # main() in-process configures the portable_wait logger for a terminal; put it back for other tests.
    logger = logging.getLogger("portable_wait")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def in_process(
    monkeypatch: pytest.MonkeyPatch, fake: FakePortable | None, *args: str, env: dict[str, str] | None = None
) -> int:
    """Run main() in this process (the same code path as the command, without an interpreter's start-up)."""
    for name in ("PORTABLE_API_KEY", "PORTABLE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    if fake is not None:
        monkeypatch.setenv("PORTABLE_API_KEY", fake.api_key)
        monkeypatch.setenv("PORTABLE_BASE_URL", fake.base_url)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    return main(list(args))


def child_env(fake: FakePortable | None, *, key: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABLE_")}
    if fake is not None:
        env["PORTABLE_BASE_URL"] = fake.base_url
        if key:
            env["PORTABLE_API_KEY"] = fake.api_key
    return env


def start(fake: FakePortable, *args: str) -> subprocess.Popen[str]:
    """Start the real command in its own process, for a test that acts on it while it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "portable_wait", *args],
        env=child_env(fake),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(
    fake: FakePortable | None, *args: str, key: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the real command in its own process, to its end."""
    env = child_env(fake, key=key)
    return subprocess.run(
        [sys.executable, "-m", "portable_wait", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_cli_wait_all_succeeded_exits_0_with_json_lines(fake: FakePortable) -> None:
    fake.add_workflow(1, running=math.inf)  # finished below, once workflow 2's end has been seen
    fake.add_workflow(2, running=0.05)
    proc = start(fake, "wait", "1", "2", "--json", *FAST)
    deadline = time.monotonic() + 30
    while not any(r.lifecycle == "NOT_RUNNING" for r in fake.requests_for(2)) and time.monotonic() < deadline:
        time.sleep(0.02)
    fake.finish(1)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    records = json_lines(stdout)
    assert [r["workflow_id"] for r in records] == [2, 1]  # in the order they finish
    assert all(r["outcome"] == "SUCCEEDED" and r["lifecycle"] == "NOT_RUNNING" for r in records)
    assert records[0]["records"] == {"extracted": 1250, "analyzed": 1250, "loaded": 1250}


def test_cli_not_a_terminal_means_json(fake: FakePortable, cli: RunCli) -> None:
    fake.add_workflow(1, running=0.05)
    result = cli(fake, "wait", "1", *FAST)
    assert result.returncode == 0
    assert json_lines(result.stdout)[0]["workflow_id"] == 1


def test_cli_failed_exits_1_with_errors(fake: FakePortable, cli: RunCli) -> None:
    fake.add_workflow(1, running=0.05)
    fake.add_workflow(2, running=0.05, outcome="FAILED", errors=["warehouse suspended"])
    result = cli(fake, "wait", "1", "2", "--json", *FAST)
    assert result.returncode == 1
    failed = next(r for r in json_lines(result.stdout) if r["workflow_id"] == 2)
    assert failed["outcome"] == "FAILED"
    assert "warehouse suspended" in failed["errors"]  # type: ignore[operator]


def test_cli_timeout_exits_3(fake: FakePortable, cli: RunCli) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, running=0.05, outcome="FAILED")
    result = cli(fake, "wait", "1", "2", "--timeout", "0.3", "--json", *FAST)
    assert result.returncode == 3
    outcomes = {r["workflow_id"]: r["outcome"] for r in json_lines(result.stdout)}
    assert outcomes == {1: "TIMEOUT", 2: "FAILED"}


def test_cli_api_error_exits_4(fake: FakePortable, cli: RunCli) -> None:
    fake.add_workflow(1, running=60)
    result = cli(fake, "wait", "1", "404", "--timeout", "0.3", "--json", *FAST)
    assert result.returncode == 4
    missing = next(r for r in json_lines(result.stdout) if r["workflow_id"] == 404)
    assert missing["error"] == {
        "type": "WorkflowNotFoundError",
        "message": "Portable API answered HTTP 404 for workflow 404: Not Found",
        "status_code": 404,
    }


def test_cli_bad_key_exits_4_without_showing_it(fake: FakePortable) -> None:
    fake.add_workflow(1)
    env_key = "definitely-wrong-key-123"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABLE_")}
    env.update(PORTABLE_API_KEY=env_key, PORTABLE_BASE_URL=fake.base_url)
    result = subprocess.run(
        [sys.executable, "-m", "portable_wait", "wait", "1", "-vv", "--json", *FAST],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 4
    assert "AuthenticationError" in result.stdout
    assert env_key not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["wait"],
        ["wait", "abc"],
        ["wait", "0"],
        ["wait", "1", "--timeout", "-5"],
        ["wait", "1", "--after", "yesterday-ish"],
        ["wait", "1", "--base-url", "http://example.com"],
        ["wait", "1", "--poll-multiplier", "0.5"],
        ["wait", "1", "--max-concurrency", "0"],
        ["wait", "1", "--rate-limit", "-1"],
        ["frobnicate"],
    ],
)
def test_cli_bad_usage_exits_2(fake: FakePortable, args: list[str], cli: RunCli) -> None:
    result = cli(fake, *args)
    assert result.returncode == 2
    assert result.stderr.strip()
    assert result.stdout == ""


def test_cli_status_one_shot(fake: FakePortable, cli: RunCli) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, start=False, previous="FAILED")
    result = cli(fake, "status", "1", "2", "--json")
    records = {r["workflow_id"]: r for r in json_lines(result.stdout)}
    assert records[1]["lifecycle"] == "RUNNING"
    assert records[2]["disposition"] == "FAILED"
    assert "outcome" not in records[1]  # a one-shot status is not an outcome


@pytest.mark.parametrize(
    ("setup", "ids", "code"),
    [
        ("running", ["1"], 0),  # still running is not a failure
        ("succeeded", ["3"], 0),
        ("running+succeeded", ["1", "3"], 0),
        ("failed", ["2"], 1),
        ("never ran", ["4"], 1),  # finished without succeeding, as for wait
        ("failed+missing", ["2", "77"], 4),  # an error wins over a failure
        ("missing", ["77"], 4),
    ],
)
def test_cli_status_exit_codes(
    fake: FakePortable,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    ids: list[str],
    code: int,
) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, start=False, previous="FAILED")
    fake.add_workflow(3, start=False, previous="SUCCEEDED")
    fake.add_workflow(4, start=False)
    assert in_process(monkeypatch, fake, "status", *ids) == code, setup
    assert len(json_lines(capsys.readouterr().out)) == len(ids)  # captured stdout is not a terminal: JSON


def test_cli_status_piped_is_json_lines_without_elapsed(fake: FakePortable, cli: RunCli) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, start=False, previous="FAILED")
    result = cli(fake, "status", "1", "2")  # no --json: stdout is a pipe
    records = json_lines(result.stdout)
    assert [r["workflow_id"] for r in records] == [1, 2]
    assert all("elapsed" not in r for r in records)
    assert result.returncode == 1 and result.stderr == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal_text(stream: io.StringIO) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())


def test_cli_status_on_a_terminal_is_a_table_fitting_80_columns(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_error = "destination rejected batch 56: schema mismatch in column 'amount' of table 'orders' " * 3
    fake.add_workflow(568971, running=60, resources={"users": 1_234_567})
    fake.add_workflow(568972, running=0.01, outcome="FAILED", errors=[long_error])
    time.sleep(0.1)
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    monkeypatch.setenv("PORTABLE_API_KEY", fake.api_key)
    monkeypatch.setenv("PORTABLE_BASE_URL", fake.base_url)
    assert main(["status", "568971", "568972"]) == 1
    lines = _terminal_text(screen).splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = lines[0].split()
    assert header[:2] == ["workflow", "state"] and "time" not in header and "elapsed" not in header
    failed = next(line for line in lines if "568972" in line)
    assert "FAILED" in failed and failed.rstrip().endswith("…") and "destination rejected" in failed
    assert len([line for line in lines if "destination" in line]) == 1  # the error on one line
    running = next(line for line in lines if "568971" in line)
    assert "RUNNING" in running


def test_cli_quiet_prints_nothing(fake: FakePortable, cli: RunCli) -> None:
    fake.add_workflow(1, running=0.05, outcome="FAILED")
    result = cli(fake, "wait", "1", "--quiet", *FAST)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "")


def test_cli_after_now_waits_for_the_new_run(fake: FakePortable, cli: RunCli) -> None:
    fake.add_workflow(1, start=False, previous="FAILED")
    result = cli(fake, "wait", "1", "--after", "now", "--timeout", "0.5", "--json", *FAST)
    assert result.returncode == 3  # the stale FAILED is not taken for the new run


def test_cli_ctrl_c_stops_cleanly_with_summary(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, running=0.05)
    proc = start(fake, "wait", "1", "2", "--json", *FAST)
    deadline = time.monotonic() + 20
    while len(fake.requests_for(1)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "interrupted" in stderr and "1 succeeded" in stderr and "1 waiting" in stderr
    assert "Traceback" not in stderr
    assert [r["workflow_id"] for r in json_lines(stdout)] == [2]
    count = len(fake.requests)
    time.sleep(0.2)
    assert len(fake.requests) == count


def test_cli_demo_runs_and_checks_itself(cli: RunCli) -> None:
    result = cli(None, "demo", "--workflows", "4", "--max-duration", "1", "--outage", "0", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    assert len(json_lines(result.stdout)) == 4
    assert "all 4 outcomes match" in result.stderr


def test_cli_fake_server_prints_how_to_use_it() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "portable_wait", "fake-server", "--port", "0", "--workflows", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(7)]
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "fake Portable API at http://127.0.0.1:" in lines[0]
    assert "export PORTABLE_API_KEY=" in lines[1] and "export PORTABLE_BASE_URL=" in lines[2]
    assert 'curl -H "Authorization: Bearer $PORTABLE_API_KEY"' in lines[3]
    assert lines[5].strip() == "portable-wait wait 1 2"  # the IDs it serves
    assert all(len(line.rstrip("\n")) <= 80 for line in lines)


def test_cli_live_table_renders_rows_and_summary() -> None:
    board = Board([1, 2, 3])
    running = WorkflowStatus.model_validate(
        {
            "id": 1,
            "lifecycle": "RUNNING",
            "disposition": "NONE",
            "resources": [{"name": "a", "extracted": 1500, "analyzed": 1400, "loaded": 1000, "errors": []}],
        }
    )
    failed = WorkflowStatus.model_validate(
        {"id": 2, "lifecycle": "NOT_RUNNING", "disposition": "FAILED", "errors": ["quota exceeded"]}
    )
    board.on_poll(PollEvent(1, 3, running, 4.2, 2.0))
    board.finish(2, WorkflowFailedError(failed))
    console = Console(record=True, width=140)
    console.print(render_board(board, console))
    text = console.export_text()
    assert "1,500" in text and "1,400" in text and "1,000" in text
    assert "RUNNING" in text and "FAILED" in text and "quota exceeded" in text
    assert "3 workflows" in text and "1 failed" in text and "2 waiting" in text


def test_cli_main_returns_exit_codes_in_process(fake: FakePortable, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTABLE_API_KEY", fake.api_key)
    fake.add_workflow(1, running=0.05)
    assert main(["wait", "1", "--base-url", fake.base_url, "--quiet", *FAST]) == 0
    assert main(["--version"]) == 0


def test_cli_live_table_shows_unfinished_first_and_counts_the_rest() -> None:
    board = Board(list(range(1, 46)))
    done = WorkflowStatus.model_validate({"id": 1, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED"})
    for wid in range(1, 11):
        board.finish(wid, done)
    console = Console(record=True, width=140, height=45)  # room for 40 rows
    console.print(render_board(board, console))
    text = console.export_text()
    ids = [int(line.split()[0]) for line in text.splitlines() if re.match(r"^\s*\d+\s", line)]
    assert "… and 5 more" in text
    assert 45 in ids  # unfinished rows come first
    assert 6 not in ids and 5 in ids  # finished ones fill what is left: 1-5 only
    assert "45 workflows" in text and "10 succeeded" in text and "35 waiting" in text


def _board_with_every_state() -> Board:
    """A board as the demo shows it: running, pending, finished both ways, a long error, big counts."""

    def status(wid: int, lifecycle: str, disposition: str, errors: list[str] | None = None) -> WorkflowStatus:
        resource = {"name": "a", "extracted": 1_007_044, "analyzed": 1_007_044, "loaded": 503_522, "errors": []}
        body = {"id": wid, "lifecycle": lifecycle, "disposition": disposition, "errors": errors or []}
        return WorkflowStatus.model_validate({**body, "resources": [resource]})

    board = Board([568971, 568972, 568973, 568974, 568975])
    board.on_poll(PollEvent(568971, 3, status(568971, "RUNNING", "NONE"), 4.2, 2.0))
    board.on_poll(PollEvent(568972, 1, status(568972, "PENDING", "NONE"), 0.5, 2.0))
    long_error = "destination rejected batch 56: schema mismatch in column 'amount' of table 'orders' " * 3
    board.finish(568973, WorkflowFailedError(status(568973, "NOT_RUNNING", "FAILED", [long_error])))
    board.finish(568974, status(568974, "NOT_RUNNING", "SUCCEEDED"))
    return board


def _render(board: Board, width: int, height: int = 24) -> list[str]:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(render_board(board, console))
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_cli_live_table_at_80_columns_shows_whole_headers_values_and_one_line_errors() -> None:
    lines = _render(_board_with_every_state(), 80)
    assert all(len(line) <= 80 for line in lines)
    header = lines[0].split()
    assert header == ["workflow", "state", "extracted", "loaded", "time", "last", "error"]
    body = "\n".join(lines[2:])
    for value in ("RUNNING", "PENDING", "FAILED", "SUCCEEDED", "1,007,044", "503,522"):
        assert value in body
    assert not re.search(r"[A-Z_]+…", body)  # nothing like NOT_RU… or SUCCEE…
    error_lines = [line for line in lines if "destination" in line or "schema" in line]
    assert len(error_lines) == 1 and error_lines[0].endswith("…")
    assert len(lines) == 2 + 5 + 2  # header, rule, five rows, summary and its failed IDs: no wrapped lines


def test_cli_live_table_at_150_columns_shows_every_column() -> None:
    lines = _render(_board_with_every_state(), 150)
    assert all(len(line) <= 150 for line in lines)
    header = lines[0].split()
    assert header == [
        "workflow",
        "lifecycle",
        "disposition",
        "extracted",
        "analyzed",
        "loaded",
        "time",
        "last",
        "error",
    ]
    assert any("NOT_RUNNING" in line and "SUCCEEDED" in line for line in lines)
    error_line = next(line for line in lines if "destination" in line)
    assert len(error_line) > 140 and error_line.endswith("…")  # a wide terminal shows more of the error
    assert len(lines) == 2 + 5 + 2


def test_cli_live_table_fits_24_lines() -> None:
    board = Board(list(range(1, 101)))
    lines = _render(board, 80, height=24)
    assert len(lines) < 24
    assert "… and" in lines[-2] and lines[-1].startswith("100 workflows in")


def test_cli_summary_says_1_workflow_not_1_workflows() -> None:
    assert Board([7]).summary_line().startswith("1 workflow in ")
    assert Board([7, 8]).summary_line().startswith("2 workflows in ")


def test_cli_every_option_and_argument_has_help() -> None:
    parser, commands = _parser()
    missing = [
        f"{name} {action.dest}"
        for name, command in commands.items()
        for action in command._actions
        if not action.help and not isinstance(action, argparse._HelpAction)
    ]
    assert missing == []
    demo_help = commands["demo"].format_help()
    assert "--max-duration" in demo_help and "about 20 s" in parser.format_help()
    assert "PORTABLE_BASE_URL" in commands["wait"].format_help()


def test_cli_missing_key_speaks_of_the_variable_not_api_key(fake: FakePortable) -> None:
    result = run(fake, "wait", "1", key=False)
    assert result.returncode == 2
    assert "PORTABLE_API_KEY" in result.stderr and "api_key=" not in result.stderr
    assert "portable-wait wait: error: " in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["wait", "1", "--timeout", "-5"], {}, "--timeout"),  # argparse's own, for comparison
        (["wait", "1", "--base-url", "http://example.com"], {}, "--base-url"),
        (["wait", "1", "--base-url", "not a url"], {}, "--base-url"),
        (["status", "1", "--base-url", "ftp://x"], {}, "--base-url"),
        (["wait", "1", "--after", "yesterday-ish"], {}, "--after"),
        (["wait", "1"], {"PORTABLE_BASE_URL": "http://example.com"}, "PORTABLE_BASE_URL"),
    ],
)
def test_cli_usage_errors_share_argparse_format(
    fake: FakePortable,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    assert in_process(monkeypatch, fake, *args, env=env) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"usage: portable-wait {args[0]} ")
    assert lines[-1].startswith(f"portable-wait {args[0]}: error: ") and says in lines[-1]


@pytest.mark.parametrize(
    "args",
    [["--port", "99999"], ["--port", "-1"], ["--port", "http"], ["--workflows", "0"], ["--workflows", "-3"]],
)
def test_cli_fake_server_bad_arguments_exit_2_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    assert in_process(monkeypatch, None, "fake-server", *args) == 2  # not OverflowError or IndexError
    err = capsys.readouterr().err
    assert f"portable-wait fake-server: error: argument {args[0]}: expected an integer from" in err


def test_cli_json_quiet_prints_json_and_nothing_on_stderr(fake: FakePortable, cli: RunCli) -> None:
    fake.add_workflow(1, running=0.05, outcome="FAILED")
    result = cli(fake, "wait", "1", "--json", "--quiet", *FAST)
    assert result.returncode == 1 and result.stderr == ""
    assert json_lines(result.stdout)[0]["outcome"] == "FAILED"
    status = cli(fake, "status", "1", "--json", "--quiet")
    assert json_lines(status.stdout)[0]["workflow_id"] == 1 and status.stderr == ""


def test_cli_demo_default_tells_the_short_story() -> None:
    parser, _ = _parser()
    plan = _demo_plan(parser.parse_args(["demo"]))
    assert 3 <= plan.workflows <= 8
    assert plan.fail_rate is None  # exactly one failure
    assert plan.outage > 0 and plan.outage_start + plan.outage < plan.max_duration  # ridden out before the end
    assert 20 <= plan.expected_seconds + 1 <= 30  # one second to start up
    long = _demo_plan(parser.parse_args(["demo", "--long"]))
    assert long.workflows == 12 and long.max_duration == 60 and long.fault_rate > 0


def test_cli_demo_rides_out_its_outage_and_checks_every_outcome(cli: RunCli) -> None:
    result = cli(None, "demo", "--workflows", "4", "--max-duration", "2", "--outage", "0.6", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert len(records) == 4
    assert [r["outcome"] for r in records].count("FAILED") == 1
    assert "a 0.6 s outage" in result.stderr
    verdict = result.stderr.splitlines()[-1]
    assert verdict.startswith("demo: all 4 outcomes match") and "1 failure" in verdict and "ridden out" in verdict


def test_cli_live_table_shows_an_outage_by_its_status_code_at_80_columns() -> None:
    from portable_wait import PortableAPIError

    board = Board([568971])
    board.on_poll(PollEvent(568971, 4, None, 9.0, 3.0, PortableAPIError(503, "Service Unavailable")))
    line = next(line for line in _render(board, 80) if "568971" in line)
    assert "HTTP 503 Service Unavailable" in line


def test_cli_table_without_errors_keeps_more_columns_at_80() -> None:
    board = _board_with_every_state()
    board.rows[568973].error = None
    header = _render(board, 80)[0].split()
    assert header == ["workflow", "state", "extracted", "analyzed", "loaded", "time", "last", "error"]


# -- a new user's first hour ----------------------------------------------------------------------------------


def _wait_on_a_terminal(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run ``wait`` in-process with stdout an 80x24 terminal; return (exit status, screen text, stderr)."""
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    code = in_process(monkeypatch, fake, "wait", *args)
    return code, _terminal_text(screen), capsys.readouterr().err


def test_cli_live_table_prints_log_lines_through_its_console_not_stderr(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_workflow(1, running=0.3)
    fake.add_fault("503", workflow_id=1, times=4)  # the first poll fails after every retry; the wait goes on
    code, screen, err = _wait_on_a_terminal(fake, monkeypatch, capsys, "1", "-v", *FAST)
    assert code == 0
    assert err == ""  # written beside the live table, a line on stderr corrupts it
    lines = screen.splitlines()
    retry = next(i for i, line in enumerate(lines) if "retry 1 of 3" in line)
    still = next(i for i, line in enumerate(lines) if "still polling" in line)
    summary = max(i for i, line in enumerate(lines) if line.startswith("1 workflow in "))
    assert retry < still < summary  # above the final table


def test_cli_live_table_without_v_shows_no_warnings(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_workflow(1, running=0.3)
    fake.add_fault("503", workflow_id=1, times=4)
    code, screen, err = _wait_on_a_terminal(fake, monkeypatch, capsys, "1", *FAST)
    assert code == 0 and err == ""
    assert "WARNING" not in screen and "still polling" not in screen  # the table's last error tells it
    assert "1 succeeded" in screen


def test_cli_json_keeps_warnings_as_plain_stderr_lines(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.3)
    fake.add_fault("503", workflow_id=1, times=4)
    result = run(fake, "wait", "1", "--json", *FAST)
    assert result.returncode == 0
    assert re.search(r"^\d\d:\d\d:\d\d WARNING workflow 1: poll 1 failed", result.stderr, re.MULTILINE)
    assert "\x1b[" not in result.stderr


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_cli_quiet_silences_warnings(
    json_flag: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    args = ("wait", "1", "--quiet", "--timeout", "1", "--base-url", url, *json_flag, *FAST)
    code = in_process(monkeypatch, None, *args, env={"PORTABLE_API_KEY": "k" * 20})
    out, err = capsys.readouterr()
    assert code in (3, 4) and err == ""
    assert (out == "") if not json_flag else (json_lines(out)[0]["workflow_id"] == 1)


def test_cli_quiet_with_v_still_logs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    args = ("wait", "1", "--quiet", "-v", "--timeout", "1", "--base-url", url, *FAST)
    in_process(monkeypatch, None, *args, env={"PORTABLE_API_KEY": "k" * 20})
    out, err = capsys.readouterr()
    assert out == "" and "retry 1 of 3" in err  # -v asks for the log explicitly


def test_cli_status_quiet_piped_prints_nothing_like_wait(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.05, outcome="FAILED")
    time.sleep(0.1)
    status = run(fake, "status", "1", "--quiet")  # stdout is a pipe
    assert (status.returncode, status.stdout, status.stderr) == (1, "", "")
    wait = run(fake, "wait", "1", "--quiet", *FAST)
    assert (wait.returncode, wait.stdout, wait.stderr) == (1, "", "")


def _status(wid: int, lifecycle: str, disposition: str) -> WorkflowStatus:
    return WorkflowStatus.model_validate({"id": wid, "lifecycle": lifecycle, "disposition": disposition})


def test_cli_final_table_at_80x24_shows_failures_first_and_lists_their_ids() -> None:
    ids = list(range(1, 41))
    failed = [1, 5, 15, 22, 30, 38, 40]
    board = Board(ids)
    for wid in ids:
        disposition = "FAILED" if wid in failed else "SUCCEEDED"
        outcome = _status(wid, "NOT_RUNNING", disposition)
        board.finish(wid, WorkflowFailedError(outcome) if wid in failed else outcome)
    lines = _render(board, 80, height=24)
    assert len(lines) < 24 and all(len(line) <= 80 for line in lines)
    rows = [line for line in lines if re.match(r"^\s+\d+\s", line)]
    assert [int(r.split()[0]) for r in rows if "FAILED" in r] == failed  # every failure shown, first
    assert "7 failed, 33 succeeded" in lines[-2]
    assert lines[-1] == "did not succeed: 1, 5, 15, 22, 30, 38, 40"


def test_cli_summary_caps_the_ids_that_did_not_succeed_to_one_line() -> None:
    ids = list(range(568_900, 568_940))
    board = Board(ids)
    for wid in ids:
        board.finish(wid, WorkflowFailedError(_status(wid, "NOT_RUNNING", "FAILED")))
    listed = board.summary_line().splitlines()[1]
    assert listed.startswith("did not succeed: 568900, 568901, ") and listed.endswith(", … (40 in all)")
    assert len(listed) <= 80


def test_cli_state_of_a_stale_result_while_waiting_after() -> None:
    board = Board([1, 2])
    board.on_poll(PollEvent(1, 1, _status(1, "NOT_RUNNING", "FAILED"), 0.1, 0.5))  # before --after: goes on
    board.on_poll(PollEvent(2, 1, _status(2, "RUNNING", "NONE"), 0.1, 0.5))
    narrow = "\n".join(_render(board, 80))
    assert "waiting (last: FAILED)" in narrow and not re.search(r"\bFAILED\b(?!\))", narrow)
    wide = "\n".join(_render(board, 150))
    assert "waiting (last: FAILED)" in wide
    board.finish(1, WorkflowFailedError(_status(1, "NOT_RUNNING", "FAILED")))
    assert "waiting (last" not in "\n".join(_render(board, 80))  # once it is the outcome, it is shown as one


def test_cli_wait_after_shows_the_old_result_as_waiting_in_the_live_table(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_workflow(1, start=False, previous="FAILED")
    code, screen, _ = _wait_on_a_terminal(fake, monkeypatch, capsys, "1", "--after", "now", "--timeout", "0.5", *FAST)
    assert code == 3
    assert "waiting (last: FAILED)" in screen


def test_cli_stats_line_is_singular_and_follows_the_summary_in_every_mode(
    fake: FakePortable, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_workflow(1, running=0.01)
    time.sleep(0.05)  # over before the wait starts: one request
    piped = run(fake, "wait", "1", "--json", *FAST)
    err = piped.stderr.splitlines()
    assert err[0].startswith("1 workflow in ") and err[1].startswith("1 request (0 answered 429), 0 retries,")
    code, screen, _ = _wait_on_a_terminal(fake, monkeypatch, capsys, "1", *FAST)
    tail = [line for line in screen.splitlines() if line.strip()][-2:]
    assert code == 0 and tail[0].startswith("1 workflow in ") and tail[1].startswith("1 request (")


def test_cli_status_json_records_have_no_outcome_even_for_errors(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, forbidden=True)
    records = json_lines(run(fake, "status", "1", "2", "--json").stdout)
    assert all("outcome" not in r for r in records)
    error = records[1]["error"]
    assert isinstance(error, dict) and error["status_code"] == 403


def test_cli_without_the_cli_extra_a_bare_command_prints_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # `import rich` raises ImportError
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "pip install 'portable-wait[cli]'" in err and "required" not in err
    assert main(["--help"]) == 0
    assert "portable-wait[cli]" in capsys.readouterr().out


def test_cli_fake_server_on_a_taken_port_suggests_port_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert in_process(monkeypatch, None, "fake-server", "--port", str(port)) == 2
    assert "--port 0" in capsys.readouterr().err


def test_cli_demo_lines_fit_80_columns() -> None:
    result = run(None, "demo", "--workflows", "3", "--max-duration", "0.5", "--outage", "0.2", "--seed", "1", "--json")
    assert result.returncode == 0, result.stderr
    ours = [line for line in result.stderr.splitlines() if not re.match(r"\d\d:\d\d:\d\d ", line)]  # not the log's
    assert any(line.startswith("demo: all 3 outcomes match") for line in ours)
    assert all(len(line) <= 80 for line in ours)
    assert result.stderr.startswith("demo: a fake Portable at http://127.0.0.1:")
