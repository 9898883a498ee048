from __future__ import annotations

import pytest

from portable_wait._validate import check_timeout, check_workflow_id, unique_workflow_ids


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (True, TypeError),
        (False, TypeError),
        ("568971", TypeError),
        (1.0, TypeError),
        (None, TypeError),
        (0, ValueError),
        (-3, ValueError),
    ],
)
def test_validate_workflow_id_rejects(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="workflow_id must be a positive int"):
        check_workflow_id(value)


def test_validate_workflow_id_accepts_positive_ints() -> None:
    assert check_workflow_id(568971) == 568971
    assert check_workflow_id(2**70) == 2**70


def test_validate_string_id_error_suggests_int() -> None:
    with pytest.raises(TypeError, match=r"int\(\.\.\.\)"):
        check_workflow_id("5")


def test_validate_unique_ids_keeps_first_order() -> None:
    assert unique_workflow_ids([3, 1, 3, 2, 1]) == [3, 1, 2]
    with pytest.raises(TypeError):
        unique_workflow_ids("123")
    with pytest.raises(ValueError, match="positive"):
        unique_workflow_ids([1, 2, 0])


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError), ("5", TypeError), (True, TypeError)])
def test_validate_timeout_rejects(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="timeout"):
        check_timeout(value)


def test_validate_timeout_accepts() -> None:
    assert check_timeout(None) is None
    assert check_timeout(float("inf")) is None
    assert check_timeout(3) == 3.0
