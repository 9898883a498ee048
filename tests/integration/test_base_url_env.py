"""PORTABLE_BASE_URL: read by the library, like PORTABLE_API_KEY; an explicit base_url wins."""

from __future__ import annotations

import pytest

from portable_wait import PortableClient, sync
from portable_wait.testing import FakePortable


def test_client_reads_portable_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTABLE_BASE_URL", " https://proxy.example.com/ ")
    assert PortableClient("k").base_url == "https://proxy.example.com"


def test_client_without_the_variable_uses_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTABLE_BASE_URL", raising=False)
    assert PortableClient("k").base_url == "https://api.portable.io"
    monkeypatch.setenv("PORTABLE_BASE_URL", "  ")  # blank is unset, as for the key
    assert PortableClient("k").base_url == "https://api.portable.io"


def test_explicit_base_url_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTABLE_BASE_URL", "https://from-env.example.com")
    assert PortableClient("k", base_url="https://explicit.example.com").base_url == "https://explicit.example.com"


@pytest.mark.parametrize("value", ["http://example.com", "ftp://x", "not a url", "https://u:p@example.com"])
def test_bad_variable_is_a_value_error_naming_it(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PORTABLE_BASE_URL", value)
    with pytest.raises(ValueError, match="PORTABLE_BASE_URL"):
        PortableClient("k")


def test_bad_explicit_base_url_does_not_blame_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTABLE_BASE_URL", "https://fine.example.com")
    with pytest.raises(ValueError, match="base_url") as caught:
        PortableClient("k", base_url="ftp://x")
    assert "PORTABLE_BASE_URL" not in str(caught.value)


async def test_client_from_the_environment_reaches_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakePortable() as fake:
        fake.add_workflow(5, start=False, previous="SUCCEEDED")
        monkeypatch.setenv("PORTABLE_BASE_URL", fake.base_url)
        monkeypatch.setenv("PORTABLE_API_KEY", fake.api_key)
        async with PortableClient() as client:
            status = await client.get_workflow_status(5)
        assert status.disposition.value == "SUCCEEDED"
        assert len(fake.requests) == 1


def test_sync_api_reads_the_variable_too(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePortable()
    with fake.run_in_thread():
        fake.add_workflow(6, start=False, previous="SUCCEEDED")
        monkeypatch.setenv("PORTABLE_BASE_URL", fake.base_url)
        monkeypatch.setenv("PORTABLE_API_KEY", fake.api_key)
        assert sync.get_workflow_status(6).id == 6
