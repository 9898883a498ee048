"""Every example runs against the embedded fake server, as its docstring says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
EXPECTED = {
    "wait_one.py": (0, "workflow 568971: SUCCEEDED"),
    "fan_out.py": (1, "17 of 20 succeeded"),
    "blocking_script.py": (1, "568972: workflow 568972 failed: Destination rejected the load"),
    "trigger_then_wait.py": (0, "ended FAILED: ['Source credentials expired']"),
}


def test_examples_all_listed() -> None:
    # The Airflow DAGs need Airflow: make test-airflow runs them (dag.test()).
    found = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith(("_", "airflow_dag"))}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_examples_run_against_the_fake(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABLE_")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    code, text = EXPECTED[name]
    assert result.returncode == code, result.stderr
    assert text in result.stdout
