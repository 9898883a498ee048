"""The portable-wait command, run as a subprocess against the fake server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from rich.console import Console

from portable_wait import WorkflowStatus
from portable_wait.cli import _Board, main
from portable_wait.testing import FakePortable

FAST = ["--poll-initial", "0.01", "--poll-max", "0.05"]


@pytest.fixture
def fake() -> Iterator[FakePortable]:
    server = FakePortable()
    with server.run_in_thread():
        yield server


def run(
    fake: FakePortable | None, *args: str, key: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABLE_")}
    if fake is not None:
        env["PORTABLE_BASE_URL"] = fake.base_url
        if key:
            env["PORTABLE_API_KEY"] = fake.api_key
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
    fake.add_workflow(1, running=1.5)  # the subprocess takes a moment to start
    fake.add_workflow(2, running=0.05)
    result = run(fake, "wait", "1", "2", "--json", *FAST)
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r["workflow_id"] for r in records] == [2, 1]  # in the order they finish
    assert all(r["outcome"] == "SUCCEEDED" and r["lifecycle"] == "NOT_RUNNING" for r in records)
    assert records[0]["records"] == {"extracted": 1250, "analyzed": 1250, "loaded": 1250}


def test_cli_not_a_terminal_means_json(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.05)
    result = run(fake, "wait", "1", *FAST)
    assert result.returncode == 0
    assert json_lines(result.stdout)[0]["workflow_id"] == 1


def test_cli_failed_exits_1_with_errors(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.05)
    fake.add_workflow(2, running=0.05, outcome="FAILED", errors=["warehouse suspended"])
    result = run(fake, "wait", "1", "2", "--json", *FAST)
    assert result.returncode == 1
    failed = next(r for r in json_lines(result.stdout) if r["workflow_id"] == 2)
    assert failed["outcome"] == "FAILED"
    assert "warehouse suspended" in failed["errors"]  # type: ignore[operator]


def test_cli_timeout_exits_3(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, running=0.05, outcome="FAILED")
    result = run(fake, "wait", "1", "2", "--timeout", "0.3", "--json", *FAST)
    assert result.returncode == 3
    outcomes = {r["workflow_id"]: r["outcome"] for r in json_lines(result.stdout)}
    assert outcomes == {1: "TIMEOUT", 2: "FAILED"}


def test_cli_api_error_exits_4(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    result = run(fake, "wait", "1", "404", "--timeout", "0.3", "--json", *FAST)
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
def test_cli_bad_usage_exits_2(fake: FakePortable, args: list[str]) -> None:
    result = run(fake, *args)
    assert result.returncode == 2
    assert result.stderr.strip()
    assert result.stdout == ""


def test_cli_missing_key_exits_2_naming_the_variable(fake: FakePortable) -> None:
    result = run(fake, "wait", "1", key=False)
    assert result.returncode == 2
    assert "PORTABLE_API_KEY" in result.stderr


def test_cli_status_one_shot(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, start=False, previous="FAILED")
    result = run(fake, "status", "1", "2", "--json")
    assert result.returncode == 0
    records = {r["workflow_id"]: r for r in json_lines(result.stdout)}
    assert records[1]["lifecycle"] == "RUNNING"
    assert records[2]["disposition"] == "FAILED"
    assert run(fake, "status", "1", "77", "--json").returncode == 4


def test_cli_quiet_prints_nothing(fake: FakePortable) -> None:
    fake.add_workflow(1, running=0.05, outcome="FAILED")
    result = run(fake, "wait", "1", "--quiet", *FAST)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "")


def test_cli_after_now_waits_for_the_new_run(fake: FakePortable) -> None:
    fake.add_workflow(1, start=False, previous="FAILED")
    result = run(fake, "wait", "1", "--after", "now", "--timeout", "0.5", "--json", *FAST)
    assert result.returncode == 3  # the stale FAILED is not taken for the new run


def test_cli_ctrl_c_stops_cleanly_with_summary(fake: FakePortable) -> None:
    fake.add_workflow(1, running=60)
    fake.add_workflow(2, running=0.05)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABLE_")}
    env.update(PORTABLE_API_KEY=fake.api_key, PORTABLE_BASE_URL=fake.base_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "portable_wait", "wait", "1", "2", "--json", *FAST],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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


def test_cli_demo_runs_and_checks_itself() -> None:
    result = run(None, "demo", "--workflows", "4", "--max-duration", "1", "--seed", "3", "--json", timeout=60)
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
    lines = [proc.stdout.readline() for _ in range(4)]
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "fake Portable API at http://127.0.0.1:" in lines[0]
    assert "PORTABLE_API_KEY=" in lines[1] and "curl -H 'Authorization: Bearer" in lines[2]


def test_cli_live_table_renders_rows_and_summary() -> None:
    board = _Board([1, 2, 3])
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
    from portable_wait import PollEvent, WorkflowFailedError

    board.on_poll(PollEvent(1, 3, running, 4.2, 2.0))
    board.finish(2, WorkflowFailedError(failed))
    console = Console(record=True, width=140)
    console.print(board.table())
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
    board = _Board(list(range(1, 46)))
    done = WorkflowStatus.model_validate({"id": 1, "lifecycle": "NOT_RUNNING", "disposition": "SUCCEEDED"})
    for wid in range(1, 11):
        board.finish(wid, done)
    console = Console(record=True, width=140, height=200)
    console.print(board.table())
    text = console.export_text()
    assert "… and 5 more" in text
    assert "│       45 │" in text  # unfinished rows come first
    assert "│        6 │" not in text  # finished ones fill what is left: 1-5 only
    assert "45 workflows" in text and "10 succeeded" in text and "35 waiting" in text
