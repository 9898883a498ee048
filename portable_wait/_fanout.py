"""Fan-out: wait on many workflows at once through one client."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Iterable
from typing import TYPE_CHECKING, Any, Literal, overload

from ._errors import PortableError
from ._models import WorkflowStatus
from ._polling import WaitOptions, wait_with_options
from ._validate import unique_workflow_ids

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup

if TYPE_CHECKING:
    from ._client import PortableClient

__all__ = ["as_completed", "wait_for_many"]

Outcome = WorkflowStatus | PortableError


async def as_completed(
    client: PortableClient, workflow_ids: Iterable[int], **wait_kwargs: Any
) -> AsyncGenerator[tuple[int, WorkflowStatus | PortableError], None]:
    """Wait on many workflows concurrently; yield ``(workflow_id, outcome)`` as each one finishes.

    The outcome is the final `WorkflowStatus`, or the `PortableError` that ended that workflow's wait
    (`WorkflowFailedError`, `WaitTimeoutError`, an API or transport error): one workflow's failure never stops
    the others. Every ID is validated before any request; duplicates are waited on once. All waits share the
    client, so its ``max_concurrency``, connection pool and request budget bound the whole fan-out, however many
    IDs there are.

    Leaving the loop early (``break``, an exception) cancels the waits still running once the generator is
    closed; close it promptly with ``contextlib.aclosing(as_completed(...))``.

    Args:
        client: An open `PortableClient`.
        workflow_ids: Positive ints.
        **wait_kwargs: ``timeout``, ``poll``, ``raise_on_failure``, ``after``, ``on_poll``, as for
            `wait_for_completion`; ``timeout`` applies to each workflow, all of which start together.

    Raises:
        TypeError, ValueError: A bad ID or keyword, before any request.
    """
    ids = unique_workflow_ids(workflow_ids)
    options = WaitOptions.build(**wait_kwargs)
    if not ids:
        return
    done: asyncio.Queue[tuple[int, Outcome | BaseException]] = asyncio.Queue()

    async def one(wid: int) -> None:
        try:
            outcome: Outcome | BaseException = await wait_with_options(client, wid, options)
        except PortableError as error:
            outcome = error
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # a bug or an interrupt: surface it in the consumer, not in a lost task
            outcome = error
        done.put_nowait((wid, outcome))

    tasks = [asyncio.ensure_future(one(wid)) for wid in ids]
    try:
        for _ in range(len(ids)):
            wid, outcome = await done.get()
            if not isinstance(outcome, (WorkflowStatus, PortableError)):
                raise outcome
            yield wid, outcome
    finally:
        pending = [t for t in tasks if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


@overload
async def wait_for_many(
    client: PortableClient,
    workflow_ids: Iterable[int],
    *,
    return_exceptions: Literal[False] = False,
    **wait_kwargs: Any,
) -> dict[int, WorkflowStatus]: ...


@overload
async def wait_for_many(
    client: PortableClient,
    workflow_ids: Iterable[int],
    *,
    return_exceptions: Literal[True],
    **wait_kwargs: Any,
) -> dict[int, WorkflowStatus | PortableError]: ...


async def wait_for_many(
    client: PortableClient,
    workflow_ids: Iterable[int],
    *,
    return_exceptions: bool = False,
    **wait_kwargs: Any,
) -> dict[int, WorkflowStatus] | dict[int, WorkflowStatus | PortableError]:
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
    if not isinstance(return_exceptions, bool):
        raise TypeError(f"return_exceptions must be a bool, got {type(return_exceptions).__name__}")
    ids = unique_workflow_ids(workflow_ids)
    outcomes: dict[int, Outcome] = {}
    async for wid, outcome in as_completed(client, ids, **wait_kwargs):
        outcomes[wid] = outcome
    ordered = {wid: outcomes[wid] for wid in ids}
    if return_exceptions:
        return ordered
    failures = [o for o in ordered.values() if isinstance(o, PortableError)]
    if failures:
        raise ExceptionGroup(f"{len(failures)} of {len(ordered)} workflows did not succeed", failures)
    return {wid: o for wid, o in ordered.items() if isinstance(o, WorkflowStatus)}
