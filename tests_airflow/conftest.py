"""Airflow test set-up: a throw-away AIRFLOW_HOME with a SQLite metadata DB, set before Airflow is imported."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> None:
    """Create the metadata DB once per session (dag.test() needs it)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
