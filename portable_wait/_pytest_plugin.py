"""pytest plugin (entry point ``pytest11``): the ``fake_portable`` and ``portable_client`` fixtures.

The fixtures are registered whether or not pytest-asyncio is installed, so a test that asks for one never sees
"fixture 'fake_portable' not found". They start an asyncio server, so they need pytest-asyncio: without it
(not installed, or disabled with ``-p no:asyncio``) a test that uses one fails at set-up with a message that
says so, and pytest is otherwise untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest

from ._client import PortableClient
from .testing import FakePortable

NEEDS_PYTEST_ASYNCIO = (
    "the fake_portable and portable_client fixtures (from portable-wait) need pytest-asyncio: "
    "pip install pytest-asyncio, and mark async tests with @pytest.mark.asyncio or set asyncio_mode = 'auto'"
)


def _require_pytest_asyncio(request: pytest.FixtureRequest) -> None:
    if not request.config.pluginmanager.has_plugin("asyncio"):
        pytest.fail(NEEDS_PYTEST_ASYNCIO, pytrace=False)


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised by a subprocess test without the plugin
    pass
else:

    @pytest_asyncio.fixture
    async def _portable_wait_fake() -> AsyncIterator[FakePortable]:
        async with FakePortable() as fake:
            yield fake

    @pytest_asyncio.fixture
    async def _portable_wait_client(_portable_wait_fake: FakePortable) -> AsyncIterator[PortableClient]:
        async with _portable_wait_fake.client() as client:
            yield client


@pytest.fixture
def fake_portable(request: pytest.FixtureRequest) -> FakePortable:
    """A running `FakePortable` on 127.0.0.1, stopped after the test."""
    _require_pytest_asyncio(request)
    return cast(FakePortable, request.getfixturevalue("_portable_wait_fake"))


@pytest.fixture
def portable_client(request: pytest.FixtureRequest, fake_portable: FakePortable) -> PortableClient:
    """A `PortableClient` bound to ``fake_portable`` (with `FAST_RETRY`), closed after the test."""
    return cast(PortableClient, request.getfixturevalue("_portable_wait_client"))
