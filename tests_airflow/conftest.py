"""Airflow test set-up: a throw-away AIRFLOW_HOME with a SQLite metadata DB, set before Airflow is imported."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="portable-wait-airflow-"))
os.environ.update(
    AIRFLOW_HOME=str(_HOME),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="True",
    AIRFLOW__CORE__DAGS_FOLDER=str(Path(__file__).parent.parent / "examples"),
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{_HOME / 'airflow.db'}",
)


atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
# The main suite's helpers (the key-echoing server of tests/integration/test_secrets.py) are importable here too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Imported after the environment above is set: Airflow reads it at import time.
from airflow.triggers.base import TriggerEvent  # noqa: E402

from portable_wait.airflow import PortableWorkflowTrigger  # noqa: E402
from portable_wait.testing import FakePortable  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> None:
    """Create the metadata DB once per session (dag.test() needs it)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


FAST = {"initial": 0.02, "maximum": 0.1, "multiplier": 1.5, "jitter": 0.2, "outage_tolerance": 2.0}
"""A quick poll policy for triggers, as the dict they serialize."""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePortable]:
    """A fake Portable server in a thread, and the ``portable_default`` connection pointing at it."""
    server = FakePortable()
    with server.run_in_thread():
        connection = {"conn_type": "portable", "host": server.base_url, "password": server.api_key}
        monkeypatch.setenv("AIRFLOW_CONN_PORTABLE_DEFAULT", json.dumps(connection))
        yield server


async def run_trigger(trigger: PortableWorkflowTrigger) -> dict[str, Any]:
    """Run a trigger to its one event; return the payload."""
    events = [event async for event in trigger.run()]
    assert len(events) == 1
    assert isinstance(events[0], TriggerEvent)
    payload: dict[str, Any] = events[0].payload
    return payload
