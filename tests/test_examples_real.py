"""An example run with --real but no API key says what to set, on one line, and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize("name", ["wait_one.py", "fan_out.py", "blocking_script.py", "trigger_then_wait.py"])
def test_examples_real_without_a_key_names_the_variable_and_exits_2(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABLE_")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--real", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "PORTABLE_API_KEY" in result.stderr
    assert result.stdout == ""
