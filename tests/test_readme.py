"""The README's code runs as written (pointed at the fake server instead of the real API)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import portable_wait
from portable_wait import PollPolicy, PortableClient, sync
from portable_wait.testing import FakePortable

README = (Path(__file__).parent.parent / "README.md").read_text()
BLOCKS: list[str] = re.findall(r"```python\n(.*?)```", README, re.S)


def block(containing: str) -> str:
    return next(b for b in BLOCKS if containing in b)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePortable]:
    server = FakePortable()
    for wid in (568971, 101, 102, 103):
        # Long enough to be seen RUNNING: the quick start passes after=now, so an already finished run would not do.
        server.add_workflow(wid, running=0.5)
    with server.run_in_thread():
        monkeypatch.setenv("PORTABLE_API_KEY", server.api_key)

        def bound_client(*args: Any, **kwargs: Any) -> PortableClient:
            kwargs["base_url"] = server.base_url
            return PortableClient(*args, **kwargs)

        fast = PollPolicy(initial=0.01, maximum=0.05)
        monkeypatch.setattr(portable_wait, "PortableClient", bound_client)
        # The snippets use the default poll= (2 s growing to 30 s); poll fast here instead.
        monkeypatch.setattr(
            portable_wait._polling.wait_for_completion,
            "__kwdefaults__",
            {**(portable_wait._polling.wait_for_completion.__kwdefaults__ or {}), "poll": fast},
        )
        for name in ("wait_for_completion", "wait_for_many"):
            original = getattr(sync, name)

            def patched(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                kwargs.setdefault("base_url", server.base_url)
                kwargs.setdefault("poll", fast)
                return _original(*args, **kwargs)

            monkeypatch.setattr(sync, name, patched)
        yield server


def test_readme_async_quick_start_runs(fake: FakePortable, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(block("asyncio.run(main())"), "README.md", "exec"), {"__name__": "readme"})
    assert "SUCCEEDED 1250" in capsys.readouterr().out


def test_readme_blocking_quick_start_runs(fake: FakePortable) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(block("from portable_wait import sync"), "README.md", "exec"), namespace)
    assert namespace["status"].disposition.value == "SUCCEEDED"
    assert set(namespace["results"]) == {101, 102, 103}


async def test_readme_fixture_example_runs(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(block("test_my_pipeline"), "README.md", "exec"), namespace)
    await namespace["test_my_pipeline"](fake_portable, portable_client)


async def test_readme_testing_examples_run(fake_portable: FakePortable, portable_client: PortableClient) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(block("def test_a_failed_run"), "README.md", "exec"), namespace)
    await namespace["test_a_failed_run"](fake_portable, portable_client)


def test_readme_blocking_testing_example_runs() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(block("def test_blocking_code"), "README.md", "exec"), namespace)
    namespace["test_blocking_code"]()
