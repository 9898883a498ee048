"""Suite-wide set-up: a developer's shell must not steer the tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_base_url_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    # `portable-wait fake-server` tells people to export PORTABLE_BASE_URL; PortableClient() reads it, and a
    # leftover export would send the unit tests' clients to a server that is long gone.
    monkeypatch.delenv("PORTABLE_BASE_URL", raising=False)
