"""pytest plugin (entry point ``pytest11``): the ``fake_portable`` and ``portable_client`` fixtures.

The fixtures are async, so they need pytest-asyncio; without it they are not registered and pytest is
otherwise untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is not installed
    pass
else:
    from ._client import PortableClient
    from .testing import FakePortable

    @pytest_asyncio.fixture
    async def fake_portable() -> AsyncIterator[FakePortable]:
        """A running `FakePortable` on 127.0.0.1, stopped after the test."""
        async with FakePortable() as fake:
            yield fake

    @pytest_asyncio.fixture
    async def portable_client(fake_portable: FakePortable) -> AsyncIterator[PortableClient]:
        """A `PortableClient` bound to ``fake_portable`` (with `FAST_RETRY`), closed after the test."""
        async with fake_portable.client() as client:
            yield client
