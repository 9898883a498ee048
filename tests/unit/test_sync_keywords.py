"""The blocking API's error for a misspelt keyword names every keyword the function accepts."""

from __future__ import annotations

import re

import pytest

from portable_wait import sync


def _accepted(error: pytest.ExceptionInfo[TypeError]) -> set[str]:
    match = re.search(r"\(accepted: ([^)]*)\)", str(error.value))
    assert match is not None, str(error.value)
    return set(match.group(1).split(", "))


def test_sync_wait_for_many_typo_lists_the_client_settings_too() -> None:
    with pytest.raises(
        TypeError, match=r"wait_for_many\(\) got an unexpected keyword 'timout'; did you mean 'timeout'"
    ):
        sync.wait_for_many([1, 3], max_concurrency=3, timout=1)  # type: ignore[call-overload]
    with pytest.raises(TypeError) as error:
        sync.wait_for_many([1, 3], timout=1)  # type: ignore[call-overload]
    assert _accepted(error) == {
        "after",
        "on_poll",
        "poll",
        "raise_on_failure",
        "timeout",
        "api_key",
        "base_url",
        "request_timeout",
        "retry",
        "max_concurrency",
        "rate_limit",
        "return_exceptions",
    }


def test_sync_wait_for_completion_typo_lists_its_client_settings() -> None:
    with pytest.raises(TypeError) as error:
        sync.wait_for_completion(1, base_ur="http://127.0.0.1:1")  # type: ignore[call-arg]
    assert "did you mean 'base_url'" in str(error.value)
    assert _accepted(error) == {
        "after",
        "on_poll",
        "poll",
        "raise_on_failure",
        "timeout",
        "api_key",
        "base_url",
        "request_timeout",
        "retry",
    }
