"""Argument checks shared by the public functions. Programmer errors are plain TypeError / ValueError."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["check_timeout", "check_workflow_id", "unique_workflow_ids"]


def check_workflow_id(workflow_id: object) -> int:
    """Return ``workflow_id`` if it is a positive int; raise TypeError or ValueError naming the problem."""
    if type(workflow_id) is int and workflow_id > 0:
        return workflow_id
    if isinstance(workflow_id, bool) or not isinstance(workflow_id, int):
        hint = " (convert it with int(...) first)" if isinstance(workflow_id, str) else ""
        raise TypeError(f"workflow_id must be a positive int, got {type(workflow_id).__name__} {workflow_id!r}{hint}")
    if workflow_id <= 0:
        raise ValueError(f"workflow_id must be a positive int, got {workflow_id}")
    return int(workflow_id)


def unique_workflow_ids(workflow_ids: Iterable[object]) -> list[int]:
    """Validate every ID, then return them once each, in the order first given."""
    if isinstance(workflow_ids, (str, bytes)) or not isinstance(workflow_ids, Iterable):
        raise TypeError(f"workflow_ids must be an iterable of ints, got {type(workflow_ids).__name__}")
    return list(dict.fromkeys(check_workflow_id(w) for w in workflow_ids))


def check_timeout(timeout: object, name: str = "timeout") -> float | None:
    """Return ``timeout`` as float seconds (None stays None); raise on anything else."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {type(timeout).__name__}")
    if math.isnan(timeout) or timeout <= 0:
        raise ValueError(f"{name} must be > 0 seconds (or None for no limit), got {timeout!r}")
    return None if math.isinf(timeout) else float(timeout)
