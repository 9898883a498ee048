"""Fan-out: wait on many workflows at once through one client.

Both functions enroll their waits in the client's hub (`_hub.WaitHub`), the same driver that runs
`wait_for_completion`: one workflow waited on alone or among thousands is polled by the same code and judged by
the same `WaitState` rules. A waiter costs a few hundred bytes (no task of its own), and waits on a workflow
that another wait of the client is already polling share its requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncGenerator, Iterable
from typing import TYPE_CHECKING, Any, Literal, overload

from ._errors import PortableError
from ._hub import Outcome
from ._models import WorkflowStatus
from ._polling import WaitKwargs, WaitOptions
from ._validate import check_bool, unique_workflow_ids_yielding

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from exceptiongroup import ExceptionGroup
    from typing_extensions import Unpack

if TYPE_CHECKING:
    from ._client import PortableClient

__all__ = ["as_completed", "wait_for_many"]


async def as_completed(
    client: PortableClient, workflow_ids: Iterable[int], **wait_kwargs: Unpack[WaitKwargs]
) -> AsyncGenerator[tuple[int, Outcome], None]:
    """Wait on many workflows concurrently; yield ``(workflow_id, outcome)`` as each one finishes.

    The outcome is the final `WorkflowStatus`, or the `PortableError` that ended that workflow's wait
    (`WorkflowFailedError`, `WaitTimeoutError`, an API or transport error): one workflow's failure never stops
    the others. Every ID is validated before any request; duplicates are waited on once. All waits share the
    client's hub, so its ``max_concurrency``, connection pool and request budget bound the whole fan-out,
    however many IDs there are; first polls are taken in the order given, ``max_concurrency`` at a time.

    Leaving the loop early (``break``, an exception) withdraws the waits still running once the generator is
    closed; close it promptly with ``contextlib.aclosing(as_completed(...))``.

    Args:
        client: An open `PortableClient`.
        workflow_ids: Positive ints.
        **wait_kwargs: ``timeout``, ``poll``, ``raise_on_failure``, ``after``, ``on_poll``, as for
            `wait_for_completion`; ``timeout`` applies to each workflow, all of which start together.
            A plain ``on_poll`` hook is called in the hub's worker that polled, so keep it quick; a
            coroutine function's runs in a task of its own and holds up no other wait.

    Raises:
        TypeError, ValueError: A bad ID or keyword, before any request.
    """
    options = WaitOptions.from_kwargs(wait_kwargs, "as_completed")
    ids = await unique_workflow_ids_yielding(workflow_ids)
    async with contextlib.aclosing(_as_completed(client, ids, options)) as outcomes:
        async for item in outcomes:
            yield item


async def _as_completed(
    client: PortableClient, ids: list[int], options: WaitOptions
) -> AsyncGenerator[tuple[int, Outcome], None]:
    """`as_completed` with validated arguments."""
    if not ids:
        return
    hub = client._wait_hub()
    done: asyncio.Queue[tuple[int, Outcome | BaseException | None]] = asyncio.Queue()
    waiters: list[Any] = []
    try:
        await hub.enroll_many(ids, options, lambda wid, outcome: done.put_nowait((wid, outcome)), waiters)
        for _ in range(len(ids)):
            wid, outcome = await done.get()
            if not isinstance(outcome, (WorkflowStatus, PortableError)):
                raise outcome if isinstance(outcome, BaseException) else AssertionError(outcome)
            yield wid, outcome
    finally:
        await hub.leave_all(waiters)


@overload
async def wait_for_many(
    client: PortableClient,
    workflow_ids: Iterable[int],
    *,
    return_exceptions: Literal[False] = False,
    **wait_kwargs: Unpack[WaitKwargs],
) -> dict[int, WorkflowStatus]: ...


@overload
async def wait_for_many(
    client: PortableClient,
    workflow_ids: Iterable[int],
    *,
    return_exceptions: Literal[True],
    **wait_kwargs: Unpack[WaitKwargs],
) -> dict[int, Outcome]: ...


async def wait_for_many(
    client: PortableClient,
    workflow_ids: Iterable[int],
    *,
    return_exceptions: bool = False,
    **wait_kwargs: Unpack[WaitKwargs],
) -> dict[int, WorkflowStatus] | dict[int, Outcome]:
    """Wait on many workflows concurrently and return every outcome, keyed by ID in the order given.

    Every ID gets an entry; duplicates are waited on once. It always waits for all of them, so one failure does
    not abandon the rest.

    Args:
        client: An open `PortableClient`.
        workflow_ids: Positive ints.
        return_exceptions: If True, a workflow whose wait ended in a `PortableError` has that error as its
            value. If False (the default), the errors are raised together once all waits are over.
        **wait_kwargs: As for `wait_for_completion`.

    Returns:
        ``{workflow_id: WorkflowStatus}`` (or ``WorkflowStatus | PortableError`` with ``return_exceptions``).

    Raises:
        ExceptionGroup: Without ``return_exceptions``, when any wait failed; it holds every failure
            (`WorkflowFailedError`, `WaitTimeoutError`, API and transport errors), each with ``.workflow_id``.
            Use ``return_exceptions=True`` to also get the successes.
        TypeError, ValueError: A bad ID or keyword, before any request.
    """
    check_bool(return_exceptions, "return_exceptions")
    options = WaitOptions.from_kwargs(wait_kwargs, "wait_for_many")
    ids = await unique_workflow_ids_yielding(workflow_ids)
    outcomes: dict[int, Outcome] = {}
    async with contextlib.aclosing(_as_completed(client, ids, options)) as results:
        async for wid, outcome in results:
            outcomes[wid] = outcome
    ordered = {wid: outcomes[wid] for wid in ids}
    if return_exceptions:
        return ordered
    failures = [o for o in ordered.values() if isinstance(o, PortableError)]
    if failures:
        raise ExceptionGroup(f"{len(failures)} of {len(ordered)} workflows did not succeed", failures)
    return {wid: o for wid, o in ordered.items() if isinstance(o, WorkflowStatus)}
