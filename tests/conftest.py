"""Suite-wide set-up: a developer's shell must not steer the tests; which tests `make test` keeps off each other."""

from __future__ import annotations

from typing import Any

import pytest

# Files whose tests `make test`'s parallel run (pytest-xdist, `--dist loadgroup`) gives to one worker, one test
# after another, started first. Timing is their point: rate windows counted at the server, fan-outs that keep a
# core busy. Two of them side by side would halve each other's share of the machine and change the scenario.
SERIAL_FILES = frozenset({"tests/integration/test_soak.py"})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Group `SERIAL_FILES` by file under ``--dist loadgroup``; every other test is its own unit.

    Not an ``xdist_group`` mark: pytest 9.2's node IDs no longer take the group suffix that marks rely on, and
    the marks are silently ignored (pytest-dev/pytest-xdist#1386). The scheduler sends the largest unit first,
    so the serial files start at once and the rest of the suite fills the other workers around them.
    """
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SerialFilesScheduling(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.partition("::")[0]
            return path if path in SERIAL_FILES else str(super()._split_scope(nodeid))

    return SerialFilesScheduling(config, log)


@pytest.fixture(autouse=True)
def _no_base_url_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    # `portable-wait fake-server` tells people to export PORTABLE_BASE_URL; PortableClient() reads it, and a
    # leftover export would send the unit tests' clients to a server that is long gone.
    monkeypatch.delenv("PORTABLE_BASE_URL", raising=False)
