"""The README's fan-out snippet runs as shown; its command-line notes match what the command does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_readme import README, block, fake  # noqa: F401  # `fake`: the README tests' fake-server fixture


@pytest.mark.usefixtures("fake")
def test_readme_fan_out_snippet_runs_as_shown(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(block("as_completed(client, workflow_ids"), "README.md", "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == ["101 SUCCEEDED", "102 SUCCEEDED", "103 SUCCEEDED"]


def test_readme_says_how_to_install_from_a_clone_and_which_ids_the_fake_serves() -> None:
    assert "pip install '.[cli]'" in README
    assert "use the IDs it prints" in README
    assert "blank variable counts as unset" in README
