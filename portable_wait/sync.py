"""The blocking API: wait for workflows from code that has no event loop (scripts, CI jobs, notebooks' cells
that are not async).

Each call opens a `PortableClient`, runs the wait in a fresh event loop with ``asyncio.run``, and closes the
client. Ctrl-C cancels the wait cleanly and raises ``KeyboardInterrupt``. From inside a running event loop,
use the async functions instead: these raise ``RuntimeError`` there rather than block the loop.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Literal, TypeVar, overload

from ._client import PortableClient
from ._config import DEFAULT_MAX_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY, RetryPolicy
from ._fanout import wait_for_many as _wait_for_many
from ._hub import Outcome
from ._models import WorkflowStatus
from ._polling import WAIT_KEYWORDS, WaitKwargs, WaitOptions
from ._polling import wait_for_completion as _wait_for_completion
from ._validate import check_keywords, check_workflow_id, unique_workflow_ids

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ["get_workflow_status", "wait_for_completion", "wait_for_many"]

T = TypeVar("T")


def wait_for_completion(
    workflow_id: int,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    retry: RetryPolicy = DEFAULT_RETRY,
    **wait_kwargs: Unpack[WaitKwargs],
) -> WorkflowStatus:
    """Block until a workflow's run is over; return its final status.

    Args:
        workflow_id: A positive int.
        api_key: The API key; defaults to ``PORTABLE_API_KEY``.
        base_url: The API root. Default: ``PORTABLE_BASE_URL`` if set, else ``https://api.portable.io``.
        request_timeout: Seconds one HTTP request may take (the client's ``request_timeout``).
        retry: The client's `RetryPolicy`.
        **wait_kwargs: ``timeout``, ``poll``, ``raise_on_failure``, ``after``, ``on_poll``, as for
            `portable_wait.wait_for_completion`.

    Raises:
        RuntimeError: Called from inside a running event loop.
        The errors of `portable_wait.wait_for_completion`.
    """
    wid = check_workflow_id(workflow_id)
    _check_wait_kwargs(wait_kwargs, wait_for_completion)
    client = PortableClient(api_key, base_url=base_url, request_timeout=request_timeout, retry=retry)

    async def main() -> WorkflowStatus:
        async with client:
            return await _wait_for_completion(client, wid, **wait_kwargs)

    return _run(main(), "wait_for_completion")


@overload
def wait_for_many(
    workflow_ids: Iterable[int],
    *,
    api_key: str | None = ...,
    base_url: str | None = ...,
    request_timeout: float = ...,
    retry: RetryPolicy = ...,
    max_concurrency: int = ...,
    rate_limit: float | None = ...,
    return_exceptions: Literal[False] = False,
    **wait_kwargs: Unpack[WaitKwargs],
) -> dict[int, WorkflowStatus]: ...


@overload
def wait_for_many(
    workflow_ids: Iterable[int],
    *,
    api_key: str | None = ...,
    base_url: str | None = ...,
    request_timeout: float = ...,
    retry: RetryPolicy = ...,
    max_concurrency: int = ...,
    rate_limit: float | None = ...,
    return_exceptions: Literal[True],
    **wait_kwargs: Unpack[WaitKwargs],
) -> dict[int, Outcome]: ...


def wait_for_many(
    workflow_ids: Iterable[int],
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    retry: RetryPolicy = DEFAULT_RETRY,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    rate_limit: float | None = None,
    return_exceptions: bool = False,
    **wait_kwargs: Unpack[WaitKwargs],
) -> dict[int, WorkflowStatus] | dict[int, Outcome]:
    """Block until every workflow's run is over; return ``{workflow_id: outcome}``.

    Takes the client's settings (``api_key``, ``base_url``, ``request_timeout``, ``retry``,
    ``max_concurrency``, ``rate_limit``) and otherwise behaves as `portable_wait.wait_for_many`.

    Raises:
        RuntimeError: Called from inside a running event loop.
        ExceptionGroup: As `portable_wait.wait_for_many`, without ``return_exceptions``.
    """
    ids = unique_workflow_ids(workflow_ids)
    _check_wait_kwargs(wait_kwargs, wait_for_many)
    client = PortableClient(
        api_key,
        base_url=base_url,
        request_timeout=request_timeout,
        retry=retry,
        max_concurrency=max_concurrency,
        rate_limit=rate_limit,
    )

    async def main() -> dict[int, WorkflowStatus] | dict[int, Outcome]:
        async with client:
            if return_exceptions:
                mixed: dict[int, Outcome] = await _wait_for_many(client, ids, return_exceptions=True, **wait_kwargs)
                return mixed
            statuses: dict[int, WorkflowStatus] = await _wait_for_many(client, ids, **wait_kwargs)
            return statuses

    return _run(main(), "wait_for_many")


def get_workflow_status(
    workflow_id: int,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> WorkflowStatus:
    """Fetch a workflow's status once, blocking. Raises as `PortableClient.get_workflow_status`."""
    wid = check_workflow_id(workflow_id)
    client = PortableClient(api_key, base_url=base_url, request_timeout=request_timeout, retry=retry)

    async def main() -> WorkflowStatus:
        async with client:
            return await client.get_workflow_status(wid)

    return _run(main(), "get_workflow_status")


def _check_wait_kwargs(wait_kwargs: WaitKwargs, function: Callable[..., object]) -> None:
    """Fail on a bad keyword here, not inside the loop; name every keyword ``function`` accepts.

    ``**wait_kwargs`` holds only what the named parameters did not take, so the accepted names are the wait's
    and ``function``'s own keyword-only ones (read from its signature, so the list cannot drift from it).
    """
    own = {p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY}
    check_keywords(wait_kwargs, WAIT_KEYWORDS | own, function.__name__)
    WaitOptions.from_kwargs(wait_kwargs, function.__name__)


def _run(coro: Coroutine[Any, Any, T], name: str) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError(
        f"portable_wait.sync.{name}() blocks, and was called from inside a running event loop; "
        f"use `await portable_wait.{name}(client, ...)` there instead"
    )
