"""Packaging: the library does not pull the CLI's display dependencies, and each missing piece says what to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ._blocking import ROOT, run_python


def test_importing_the_library_does_not_import_rich() -> None:
    result = run_python(
        """
        import sys
        import portable_wait, portable_wait.sync, portable_wait.testing, portable_wait.cli
        print(sorted(m for m in sys.modules if m.partition(".")[0] in ("rich", "pygments", "markdown_it")))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["wait", "1"], ["status", "1"], ["demo"], ["fake-server", "--port", "0"]])
def test_cli_without_rich_prints_the_install_command_and_exits_2(args: list[str]) -> None:
    result = run_python(
        f"""
        import sys, runpy
        sys.argv = ["portable-wait", *{args!r}]
        runpy.run_module("portable_wait", run_name="__main__")
        """,
        block=("rich",),
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'portable-wait[cli]'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_library_works_without_rich() -> None:
    result = run_python(
        """
        import asyncio
        from portable_wait import wait_for_completion
        from portable_wait.testing import FAST_POLL, FakePortable

        async def main():
            async with FakePortable() as fake:
                fake.add_workflow(1, running=0.05)
                async with fake.client() as client:
                    print((await wait_for_completion(client, 1, poll=FAST_POLL)).disposition.value)

        asyncio.run(main())
        """,
        block=("rich",),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SUCCEEDED"


def test_rich_is_an_extra_that_dev_installs() -> None:
    # tomllib is 3.11+; on 3.10 pytest itself depends on tomli, the same parser.
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("rich") for dep in project["dependencies"])
    assert any(dep.startswith("rich") for dep in project["optional-dependencies"]["cli"])
    assert "portable-wait[cli]" in project["optional-dependencies"]["dev"]  # make test / make demo / CI get it


_ASYNC_TEST = """
async def test_uses_the_fixture(fake_portable):
    assert fake_portable.base_url
"""


@pytest.mark.parametrize("how", ["disabled", "not installed"])
def test_pytest_plugin_without_pytest_asyncio_names_it(tmp_path: Path, how: str) -> None:
    (tmp_path / "test_user.py").write_text(_ASYNC_TEST)
    block = ("pytest_asyncio",) if how == "not installed" else ()
    result = run_python(
        """
        import sys, pytest
        sys.exit(pytest.main(["-p", "no:asyncio", "-p", "no:cacheprovider", "-q", "test_user.py"]))
        """,
        block=block,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "need pytest-asyncio: pip install pytest-asyncio" in result.stdout
    assert "not found" not in result.stdout  # the fixture is registered either way
