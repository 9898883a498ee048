"""Airflow integration: a ``portable`` connection, a deferrable sensor and its trigger.

Install with ``pip install 'portable-wait[airflow]'`` (Airflow 3.x). Nothing else in portable-wait imports
this module, so the library works without Airflow.

* **Connection** ``portable`` (default id ``portable_default``): *host* is the API's base URL (empty: the
  public API; a port on the connection is kept), *password* the API key. Define it in the UI, a secrets
  backend, or an environment variable
  (``AIRFLOW_CONN_PORTABLE_DEFAULT='{"conn_type": "portable", "password": "..."}'``); no key lives in a DAG file.
  `PortableHook.test_connection` backs the UI's Test button.
* `PortableWorkflowTrigger` waits on one or many workflow IDs inside the triggerer's event loop with the
  library's own fan-out (no blocking call), and fires one `TriggerEvent` with every workflow's outcome as JSON.
  It serializes the workflow IDs, the connection id, the *absolute* deadline, ``after`` and the poll policy, so
  a triggerer restart resumes the same wait with the same deadline. Triggers on the same connection in one
  triggerer share one `PortableClient` (see `shared_client`).
* `PortableWorkflowSensor` defers to the trigger (``deferrable=True``, the default) or pokes
  (``deferrable=False``); it fails the task with the workflows' own error messages (at the first failure with
  ``fail_fast=True``, the default), and its ``timeout`` is an absolute deadline fixed when the task first runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from yarl import URL

try:
    from airflow.sdk import BaseHook, BaseSensorOperator, PokeReturnValue, XComArg
    from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException, AirflowSensorTimeout
    from airflow.triggers.base import BaseTrigger, TriggerEvent
except ImportError as exc:  # pragma: no cover - exercised only without Airflow
    raise ImportError("portable_wait.airflow needs Apache Airflow 3: pip install 'portable-wait[airflow]'") from exc

from . import (
    AuthenticationError,
    PermissionDeniedError,
    PollEvent,
    PollPolicy,
    PortableClient,
    PortableError,
    RetryPolicy,
    WaitTimeoutError,
    WorkflowNotFoundError,
    WorkflowStatus,
    as_completed,
)
from ._airflow_provider import FIELD_BEHAVIOUR, TEST_WORKFLOW_FIELD, get_provider_info
from ._config import DEFAULT_MAX_CONCURRENCY, DEFAULT_POLL
from ._hub import poll_round
from ._polling import WaitOptions, WaitState
from ._report import outcome_name, outcome_to_json, redact_event
from ._validate import check_bool, fromisoformat, unique_workflow_ids

__all__ = [
    "FULL_RECORDS_MAX",
    "PROBE_WORKFLOW_ID",
    "PortableHook",
    "PortableWorkflowSensor",
    "PortableWorkflowTrigger",
    "get_provider_info",
    "shared_client",
]

TRIGGER_PATH = "portable_wait.airflow.PortableWorkflowTrigger"

PROBE_WORKFLOW_ID = 2_147_483_647
"""The workflow `PortableHook.test_connection` asks about when the connection names none: an ID that should not
exist, so a valid key draws 404 Not Found and a bad key 401 Unauthorized."""

PROBE_TIMEOUT = 15.0
"""Seconds `PortableHook.test_connection` waits for an answer, retries included (the UI waits on it)."""

FULL_RECORDS_MAX = 50
"""Up to this many workflows per sensor, every workflow has its full record in the event and XCom; beyond it,
workflows that succeeded are listed by ID only (``succeeded_ids``) and counted, to keep the payload small."""

MAP_INDEX_TEMPLATE = "workflow {{ task.workflow_ids }}"
"""How mapped sensor instances are labelled in the UI, unless the DAG passes its own ``map_index_template``."""

T = TypeVar("T")
Outcome = WorkflowStatus | PortableError


class PortableHook(BaseHook):
    """Reads a ``portable`` connection: host = base URL (optional, port kept), password = API key."""

    conn_name_attr = "portable_conn_id"
    default_conn_name = "portable_default"
    conn_type = "portable"
    hook_name = "Portable"

    def __init__(self, portable_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.portable_conn_id = portable_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the form's field behaviour, for Airflow 3.0/3.1 with the FAB extras.

        From Airflow 3.2 the form is read from the provider info (``_airflow_provider.FIELD_BEHAVIOUR``, the one
        home of these values) and this method is not called.
        """
        return {key.replace("-", "_"): value for key, value in FIELD_BEHAVIOUR.items()}

    @staticmethod
    def settings_from(connection: Any) -> tuple[str, str | None]:
        """Return (api_key, base_url) from a connection; base_url None means the library's default.

        A port on the connection (``portable://:key@host:8443``) is kept: ``https://host:8443``.

        Raises:
            AirflowException: No key, or a port that contradicts the one in the host.
        """
        key = connection.password
        if not key:
            raise AirflowException(
                f"the Airflow connection {connection.conn_id!r} has no password: put the Portable API key there"
            )
        host = (connection.host or "").strip()
        port = connection.port
        if not host:
            if port:
                raise AirflowException(
                    f"the Airflow connection {connection.conn_id!r} has a port ({port}) but no host: "
                    "set the host to the API's base URL, e.g. https://api.example.com:8443"
                )
            return key, None
        if "://" not in host:
            host = f"https://{host}"
        if port:
            url = URL(host)
            if url.explicit_port is None:
                host = str(url.with_port(int(port)))
            elif url.explicit_port != int(port):
                raise AirflowException(
                    f"the Airflow connection {connection.conn_id!r} has port {port} and a host with port "
                    f"{url.explicit_port}: keep one"
                )
        return key, host

    def get_client(self, **kwargs: Any) -> PortableClient:
        """Return a `PortableClient` for this connection (blocking look-up: for workers, not the triggerer)."""
        return _client(*self.settings_from(self.get_connection(self.portable_conn_id)), **kwargs)

    async def aget_settings(self) -> tuple[str, str | None]:
        """Return (api_key, base_url) for this connection, looked up without blocking the event loop."""
        getter = getattr(type(self), "aget_connection", None)
        if getter is not None:
            connection = await getter(self.portable_conn_id)
        else:  # pragma: no cover - older task SDKs
            connection = await asyncio.to_thread(self.get_connection, self.portable_conn_id)
        return self.settings_from(connection)

    async def aget_client(self, **kwargs: Any) -> PortableClient:
        """Return a new `PortableClient` for this connection, looked up without blocking the event loop."""
        return _client(*await self.aget_settings(), **kwargs)

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection for the UI's Test button: return (passed, what the result proves).

        Without a "Test workflow ID" on the connection, it asks for the status of `PROBE_WORKFLOW_ID`, a workflow
        that should not exist: 404 Not Found means the base URL is Portable's API and it **accepted the key**
        (a bad key draws 401 first). That proves the key and the URL, not that the key can see your workflows.
        With a test workflow ID, it reads that workflow, which proves access to it. 401 and 403 fail the test,
        as does a base URL that cannot be reached or does not answer like Portable within `PROBE_TIMEOUT`.
        """
        try:
            connection = self.get_connection(self.portable_conn_id)
            key, base_url = self.settings_from(connection)
            workflow_id = _test_workflow_id(connection)
        except Exception as error:  # a missing connection, no key, a bad test workflow ID: say which
            return False, f"{type(error).__name__}: {error}"
        return _run_blocking(_probe(key, base_url, workflow_id))


def _client(api_key: str, base_url: str | None, **kwargs: Any) -> PortableClient:
    if base_url is not None:
        kwargs["base_url"] = base_url
    return PortableClient(api_key, **kwargs)


def _test_workflow_id(connection: Any) -> int | None:
    extra = connection.extra_dejson or {}
    value = extra.get(TEST_WORKFLOW_FIELD, extra.get(f"extra__portable__{TEST_WORKFLOW_FIELD}"))
    if value in (None, ""):
        return None
    try:
        workflow_id = int(value)
    except (TypeError, ValueError):
        workflow_id = 0
    if workflow_id <= 0:
        raise AirflowException(f"the connection's Test workflow ID must be a positive integer, got {value!r}")
    return workflow_id


async def _probe(api_key: str, base_url: str | None, workflow_id: int | None) -> tuple[bool, str]:
    try:
        client = _client(api_key, base_url, retry=RetryPolicy(attempts=2, initial=0.2, maximum=1.0))
    except (TypeError, ValueError) as error:  # a base URL that is not one; messages never hold the key
        return False, str(error)
    where = client.base_url
    wid = workflow_id or PROBE_WORKFLOW_ID
    try:
        async with client:
            status = await asyncio.wait_for(client.get_workflow_status(wid), PROBE_TIMEOUT)
    except AuthenticationError:
        return False, f"{where} rejected the API key (401 Unauthorized): check the key in the API key field"
    except PermissionDeniedError:
        return False, (
            f"{where} refused the API key for workflow {wid} (403 Forbidden): the key is not allowed to read "
            "workflow statuses there"
        )
    except WorkflowNotFoundError:
        if workflow_id is not None:
            return False, f"{where} accepted the API key, but workflow {wid} was not found (404): check its ID"
        return True, (
            f"{where} accepted the API key: a status request for a workflow that should not exist ({wid}) was "
            "answered 404 Not Found, not 401 Unauthorized. This proves the key and the base URL, not that the "
            "key can see your workflows: set a Test workflow ID to check one."
        )
    except asyncio.TimeoutError:
        return False, f"no answer from {where} within {PROBE_TIMEOUT:g} s"
    except PortableError as error:
        return False, f"could not check the key at {where}: {error}"
    if workflow_id is not None:
        return True, (
            f"{where} accepted the API key and it can read workflow {wid} "
            f"(now {status.lifecycle.value}, last result {status.disposition.value})"
        )
    return True, f"{where} accepted the API key (it can read workflow {wid})"


def _run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from blocking code, in a thread of its own if this one already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass(eq=False)
class _Shared:
    client: PortableClient
    users: int = 0


# One client per (event loop, connection, settings). The triggerer runs every trigger in one loop, so in
# production this is one client per connection; keying by the loop keeps a client (its session and locks belong
# to one loop) from leaking into another, as when tests run several loops.
_SHARED: dict[tuple[object, ...], _Shared] = {}


@contextlib.asynccontextmanager
async def shared_client(
    api_key: str, base_url: str | None, *, portable_conn_id: str, max_concurrency: int
) -> AsyncIterator[PortableClient]:
    """Lend the event loop's shared `PortableClient` for one connection; close it when its last user is done.

    Every trigger on the same connection (id, base URL, key) and client settings in one triggerer shares one
    client: one connection pool of ``max_concurrency``, one request pace and 429 pause. It is reference-counted
    and closed when the last trigger using it ends or is cancelled.
    """
    # The key is hashed so that the registry never holds it in clear beside the connection's other settings.
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    key = (asyncio.get_running_loop(), portable_conn_id, base_url, digest, max_concurrency)
    entry = _SHARED.get(key)
    if entry is None:
        entry = _SHARED[key] = _Shared(_client(api_key, base_url, max_concurrency=max_concurrency))
    entry.users += 1
    try:
        yield entry.client
    finally:
        entry.users -= 1
        if entry.users == 0:
            # Unregistered before the await: a trigger starting meanwhile gets a new client, not a closing one.
            del _SHARED[key]
            await entry.client.aclose()


def _poll_to_dict(poll: PollPolicy) -> dict[str, float]:
    return {
        "initial": poll.initial,
        "maximum": poll.maximum,
        "multiplier": poll.multiplier,
        "jitter": poll.jitter,
        "outage_tolerance": poll.outage_tolerance,
    }


def _parse_after(after: datetime | str | None) -> datetime | None:
    if after is None or after == "":
        return None
    if isinstance(after, str):
        try:
            after = fromisoformat(after.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"after must be an ISO 8601 timestamp with a timezone, got {after!r}; a template such as "
                "'{{ data_interval_end }}' renders 'None' for a run without a data interval"
            ) from None
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware (Airflow's logical dates are); got a naive datetime")
    return after


@dataclass(frozen=True)
class _Timing:
    """What a timeout message needs: the configured timeout and when the wait began (Unix seconds)."""

    timeout: float | None
    deadline: float | None

    def timeout_text(self, wid: int, last: WorkflowStatus | None) -> str | None:
        if self.timeout is None or self.deadline is None:
            return None
        waited = time.time() - (self.deadline - self.timeout)
        seen = f"last seen {last.lifecycle.value}" if last is not None else "no status received"
        return (
            f"workflow {wid} did not finish within the sensor's timeout of {self.timeout:g} s "
            f"(waited {waited:.0f} s since the task first started; {seen})"
        )


def _records(
    ids: Sequence[int], outcomes: dict[int, Outcome], last_seen: dict[int, WorkflowStatus], timing: _Timing
) -> dict[int, dict[str, Any]]:
    """Return one record per workflow: its outcome's, or UNFINISHED with its last status if the wait stopped early."""
    records: dict[int, dict[str, Any]] = {}
    for wid in ids:
        outcome = outcomes.get(wid)
        if outcome is None:  # fail_fast ended the wait before this one finished
            last = last_seen.get(wid)
            record: dict[str, Any] = outcome_to_json(wid, last) if last is not None else {"workflow_id": wid}
            record["outcome"] = "UNFINISHED"
        else:
            record = outcome_to_json(wid, outcome)
            if isinstance(outcome, WaitTimeoutError):
                text = timing.timeout_text(wid, outcome.last_status)
                if text is not None:
                    record["error"]["message"] = text
        records[wid] = record
    return records


def _line(record: dict[str, Any]) -> str:
    wid, name = record["workflow_id"], record["outcome"]
    if name == "UNFINISHED":
        seen = f"last seen {record['lifecycle']}" if "lifecycle" in record else "no status received"
        return f"workflow {wid}: UNFINISHED: not waited for, the wait stopped at the first failure ({seen})"
    details = list(record.get("errors") or [])
    if "error" in record and name != "FAILED":
        details = [record["error"]["message"]]
    return f"workflow {wid}: {name}" + (f": {'; '.join(details)}" if details else "")


def _event_payload(
    records: dict[int, dict[str, Any]], error: BaseException | None = None, *, key: str | None = None
) -> dict[str, Any]:
    """Build the payload of every trigger event and sensor XCom: the one place they are shaped.

    ``{"status": "success" | "failure", "message", "results": {id: record}, "succeeded_ids", "counts"}``, or
    ``{"status": "error", "message", ...}`` (no records) when ``error`` kept the wait from starting, e.g. a
    connection with no key. ``results`` holds the full record of every workflow that did not succeed, and of the
    succeeded ones too when there are at most `FULL_RECORDS_MAX` workflows; ``succeeded_ids`` lists every
    workflow that succeeded, ``counts`` the workflows per outcome. Size: about 0.5 KB per full record (more with
    many errors or resources) plus about 10 bytes per succeeded ID: about 10 KB for 1,000 that all succeeded.

    The payload leaves the triggerer for Airflow's database and task logs: it is redacted of ``key`` (the
    connection's) and of every live client's key, in every encoding `Redactor` knows, as the last step.
    """
    succeeded = [wid for wid, record in records.items() if record["outcome"] == "SUCCEEDED"]
    unsuccessful = [record for record in records.values() if record["outcome"] != "SUCCEEDED"]
    summarize = len(records) > FULL_RECORDS_MAX
    if error is not None:
        status, message = "error", f"{type(error).__name__}: {error}"
    elif unsuccessful:
        status, message = "failure", "\n".join(_line(record) for record in unsuccessful)
    elif len(records) == 1:
        status, message = "success", f"workflow {next(iter(records))} succeeded"
    else:
        status, message = "success", f"all {len(records)} workflows succeeded"
    payload = {
        "status": status,
        "message": message,
        "results": {
            str(wid): record for wid, record in records.items() if not (summarize and record["outcome"] == "SUCCEEDED")
        },
        "succeeded_ids": succeeded,
        "counts": dict(Counter(record["outcome"] for record in records.values())),
    }
    return redact_event(payload, key)


def _stops_the_wait(outcome: Outcome) -> bool:
    # A timeout is not a reason to stop the others early: all share the deadline, so they time out together.
    return outcome_name(outcome) != "SUCCEEDED" and not isinstance(outcome, WaitTimeoutError)


class PortableWorkflowTrigger(BaseTrigger):
    """Wait for Portable workflows in the triggerer; fire one event with every outcome.

    Args:
        workflow_ids: The workflows to wait on (one trigger can wait on many).
        portable_conn_id: The Airflow connection to use.
        deadline: Absolute deadline, Unix seconds (None: no limit). Past it, unfinished workflows are TIMEOUT.
        after: ISO timestamp: ignore results of runs completed before it (see the README's ``after=``).
        poll: `PollPolicy` fields as a dict.
        max_concurrency: Requests in flight at once for the connection's shared client.
        fail_fast: End the wait at the first workflow that FAILED or hit a permanent error, reporting the others
            as UNFINISHED with their last status. False waits for all.
        timeout: The sensor's configured timeout in seconds (``deadline`` is when it ends), for the message.

    The event's payload is described in `_event_payload`; each record is as the CLI's ``--json`` lines
    (``outcome``, ``disposition``, ``errors``, ``error`` with the error's ``type`` and ``message``, ...).
    """

    def __init__(
        self,
        workflow_ids: Sequence[int],
        portable_conn_id: str = PortableHook.default_conn_name,
        deadline: float | None = None,
        after: str | None = None,
        poll: dict[str, float] | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        fail_fast: bool = True,
        timeout: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow leaves it unannotated
        self.workflow_ids = unique_workflow_ids(workflow_ids)
        self.portable_conn_id = portable_conn_id
        self.deadline = deadline
        self.after = after
        self.poll = dict(poll) if poll is not None else _poll_to_dict(DEFAULT_POLL)
        self.max_concurrency = max_concurrency
        self.fail_fast = check_bool(fail_fast, "fail_fast")
        self.timeout = timeout
        PollPolicy(**self.poll)  # fail at construction, not in the triggerer
        _parse_after(after)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            TRIGGER_PATH,
            {
                "workflow_ids": list(self.workflow_ids),
                "portable_conn_id": self.portable_conn_id,
                "deadline": self.deadline,
                "after": self.after,
                "poll": dict(self.poll),
                "max_concurrency": self.max_concurrency,
                "fail_fast": self.fail_fast,
                "timeout": self.timeout,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        api_key: str | None = None
        try:
            api_key, base_url = await PortableHook(self.portable_conn_id).aget_settings()
            # The deadline is absolute; measure what is left only now, since the look-up can take a while
            # (a triggerer restarting with many triggers, a slow secrets backend).
            remaining = None if self.deadline is None else self.deadline - time.time()
            async with shared_client(
                api_key, base_url, portable_conn_id=self.portable_conn_id, max_concurrency=self.max_concurrency
            ) as client:
                outcomes, last_seen = await self._wait(client, remaining)
        except Exception as error:  # no client at all: a bad connection, say. Report it as an event too.
            payload = _event_payload({}, error, key=api_key)
        else:
            records = _records(self.workflow_ids, outcomes, last_seen, _Timing(self.timeout, self.deadline))
            payload = _event_payload(records, key=api_key)
        yield TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def _wait(
        self, client: PortableClient, remaining: float | None
    ) -> tuple[dict[int, Outcome], dict[int, WorkflowStatus]]:
        last_seen: dict[int, WorkflowStatus] = {}

        def track(event: PollEvent) -> None:
            if event.status is not None:
                last_seen[event.workflow_id] = event.status

        outcomes: dict[int, Outcome] = {}
        waits = as_completed(
            client,
            self.workflow_ids,
            timeout=max(remaining, 1e-3) if remaining is not None else None,
            after=_parse_after(self.after),
            poll=PollPolicy(**self.poll),
            on_poll=track,
        )
        async with contextlib.aclosing(waits) as results:
            async for wid, outcome in results:
                outcomes[wid] = outcome
                if self.fail_fast and _stops_the_wait(outcome):
                    break  # leaving the loop cancels the other waits
        return outcomes, last_seen


class PortableWorkflowSensor(BaseSensorOperator):
    """Wait until Portable workflows finish; fail with their own error messages if one does not succeed.

    Args:
        workflow_ids: One workflow ID or a list of them (templated).
        portable_conn_id: The ``portable`` connection. Default ``portable_default``. Checked when the task
            starts, before deferring: a missing connection fails the task at once.
        after: A timezone-aware datetime or ISO string (templated): results of runs completed before it are never
            taken for the run you wait for. Set it: when an upstream task triggered the sync, its trigger time;
            for syncs on Portable's own schedule, ``{{ data_interval_end }}``. See the README.
        deferrable: Defer to `PortableWorkflowTrigger` (default) instead of occupying a worker slot.
        poll: The `PollPolicy` used while deferred. Default ``PollPolicy()``.
        max_concurrency: Requests in flight at once on the connection's client (shared by the triggerer).
        fail_fast: Fail at the first workflow that FAILED, timed out or hit a permanent error, reporting the
            others' last statuses, instead of when the slowest ends. Default True.
        timeout: Seconds (or a timedelta) from the task's first start to give up: an absolute deadline, kept
            across deferral and triggerer restarts. Default: Airflow's sensor default.
        poke_interval: Seconds between pokes when ``deferrable=False``.

    Returns (XCom): the payload described in `_event_payload` (``results``, ``succeeded_ids``, ``counts``,
    ``message``), the same in both modes. Mapped instances are labelled with their workflow IDs.
    """

    template_fields: Sequence[str] = ("workflow_ids", "after")
    ui_color = "#c8e6c9"

    def __init__(
        self,
        *,
        workflow_ids: int | Sequence[int] | XComArg,
        portable_conn_id: str = PortableHook.default_conn_name,
        after: datetime | str | XComArg | None = None,
        deferrable: bool = True,
        poll: PollPolicy | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        fail_fast: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 30)
        super().__init__(**kwargs)
        check_bool(fail_fast, "fail_fast")
        # Templated: a template, an XComArg, resolved by the time execute() reads them, so checked there.
        self.workflow_ids: Any = workflow_ids
        self.portable_conn_id = portable_conn_id
        self.after: Any = after
        self.deferrable = deferrable
        self.poll = poll or DEFAULT_POLL
        self.max_concurrency = max_concurrency
        self.fail_fast = fail_fast
        # The poke-mode wait carried between pokes (see `_PokeCarry`), when not in the task's state store.
        self._carry: dict[str, Any] | None = None
        self._warned_no_store = False
        self._execute_started: float | None = None

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """As ``BaseOperator.partial``, with the instances of ``.expand(workflow_ids=...)`` labelled by ID.

        Airflow renders a mapped task's label from the template the *mapped* operator carries, so the default is
        set here (``None``, which ``partial`` passes when the DAG sets none, takes it too).
        """
        if kwargs.get("map_index_template") is None:
            kwargs["map_index_template"] = MAP_INDEX_TEMPLATE
        return super().partial(**kwargs)

    def _ids(self) -> list[int]:
        ids = self.workflow_ids
        if isinstance(ids, str):  # a rendered template
            ids = [int(part) for part in ids.replace(",", " ").replace("[", " ").replace("]", " ").split()]
        return unique_workflow_ids([ids] if isinstance(ids, int) else ids)

    def _after_iso(self) -> str | None:
        after = _parse_after(self.after)
        return after.isoformat() if after is not None else None

    def _settings(self) -> tuple[str, str | None]:
        """Return (api_key, base_url) of the connection; fail now, on the worker, for one that cannot be used."""
        try:
            connection = PortableHook(self.portable_conn_id).get_connection(self.portable_conn_id)
        except AirflowNotFoundException:
            raise AirflowException(
                f"no Airflow connection {self.portable_conn_id!r}: create one of type 'portable' with the "
                "Portable API key as its password (UI, secrets backend, or AIRFLOW_CONN_"
                f"{self.portable_conn_id.upper()}), or pass portable_conn_id=..."
            ) from None
        return PortableHook.settings_from(connection)

    def execute(self, context: Any) -> Any:  # noqa: RET503 - defer() raises TaskDeferred
        self._settings()
        if self.after is None or self.after == "":
            self.log.warning(
                "Portable: no after= given, so a previous run's result can be taken for the run you wait for; "
                "pass the time the sync was triggered, or {{ data_interval_end }} for Portable's own schedule"
            )
        if not self.deferrable:
            if not self.reschedule:
                self._carry = None  # a new wait; in reschedule mode execute() runs again at every try
            # Taken before Airflow's own start (in super().execute), so that this wait's deadline comes first
            # and a timeout fails with the workflows' records rather than Airflow's bare message.
            self._execute_started = time.time()
            return super().execute(context)
        deadline = time.time() + self.timeout if self.timeout else None
        trigger = PortableWorkflowTrigger(
            self._ids(),
            self.portable_conn_id,
            deadline=deadline,
            after=self._after_iso(),
            poll=_poll_to_dict(self.poll),
            max_concurrency=self.max_concurrency,
            fail_fast=self.fail_fast,
            timeout=float(self.timeout) if self.timeout else None,
        )
        # The trigger ends the wait itself at the deadline; Airflow's own trigger timeout is a backstop after it.
        backstop = timedelta(seconds=self.timeout + 60) if self.timeout else None
        self.defer(trigger=trigger, method_name="execute_complete", timeout=backstop)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: return the payload, or fail with the workflows' own errors."""
        if not event:
            raise AirflowException("the Portable trigger fired without an event")
        return self._finish(event)

    def _finish(self, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("status") == "success":
            self.log.info("Portable: %s", payload.get("message"))
            return payload
        message = payload.get("message", "unknown error")
        results: dict[str, Any] = payload.get("results", {})
        outcomes = {r["outcome"] for r in results.values()}
        if "TIMEOUT" in outcomes and outcomes <= {"SUCCEEDED", "TIMEOUT", "UNFINISHED"}:
            raise AirflowSensorTimeout(f"Portable workflows did not finish in time:\n{message}")
        raise AirflowException(f"Portable workflows did not succeed:\n{message}")

    def poke(self, context: Any) -> bool | PokeReturnValue:
        """Poll every unfinished workflow once (``deferrable=False``); done when the wait is over.

        The wait has the deferrable path's semantics, judged by the same `WaitState` through the client's hub
        (`poll_round`): a poll failing with a transient error within ``poll.outage_tolerance`` keeps the
        sensor waiting; a permanent error, or an outage longer than that, ends the workflow's wait with the
        error. ``after`` and the tolerance hold across pokes: the states are carried on this instance in
        "poke" mode and in the task's state store (``task_state_store``) between tries in "reschedule" mode.
        The wait's deadline is the sensor's ``timeout`` from the first poke. Returns the deferrable path's
        payload (`_event_payload`) as the XCom once every workflow succeeded; fails with the workflows' own
        messages otherwise (at the first failure with ``fail_fast``).
        """
        ids = self._ids()
        api_key, base_url = self._settings()
        carry = self._load_carry(context, ids)
        options = WaitOptions.build(
            after=_parse_after(self.after),
            poll=self.poll,
            raise_on_failure=False,
            timeout=float(self.timeout) if self.timeout else None,
        )
        outcomes = _run_blocking(self._poll_round(api_key, base_url, options, carry))
        done = len(carry.finished) == len(ids) or (
            self.fail_fast and any(_stops_the_wait(outcome) for outcome in outcomes.values())
        )
        if not done:
            self._save_carry(context, carry)
            waiting = [wid for wid in ids if wid not in carry.finished]
            self.log.info(
                "Portable: %d of %d workflows finished; waiting on %s",
                len(carry.finished),
                len(ids),
                ", ".join(map(str, waiting[:10])) + (", ..." if len(waiting) > 10 else ""),
            )
            return False
        self._drop_carry(context)
        records: dict[int, dict[str, Any]] = {}
        for wid in ids:
            record = carry.finished.get(wid)
            if record is None:  # fail_fast ended the wait before this one finished
                last = carry.last_status(wid)
                record = outcome_to_json(wid, last) if last is not None else {"workflow_id": wid}
                record["outcome"] = "UNFINISHED"
            records[wid] = record
        return PokeReturnValue(is_done=True, xcom_value=self._finish(_event_payload(records, key=api_key)))

    async def _poll_round(
        self, api_key: str, base_url: str | None, options: WaitOptions, carry: _PokeCarry
    ) -> dict[int, Outcome]:
        """Poll the unfinished workflows once; record what ended in ``carry``; return those outcomes."""
        async with _client(api_key, base_url, max_concurrency=self.max_concurrency) as client:
            loop = asyncio.get_running_loop()
            states = carry.states(options, loop.time())
            results = await poll_round(client, states)
            now = loop.time()
        ended: dict[int, Outcome] = {}
        for wid, outcome in results.items():
            state = states[wid]
            if outcome is None:
                carry.keep(wid, state.snapshot(now))
                continue
            if isinstance(outcome, WaitTimeoutError) and outcome.last_status is None:
                # Past the deadline before this poke's request: the last status is a previous poke's.
                outcome = state.timed_out(carry.last_status(wid))
            ended[wid] = outcome
            record = outcome_to_json(wid, outcome)
            if isinstance(outcome, WaitTimeoutError):
                timing = _Timing(options.timeout, carry.started + options.timeout if options.timeout else None)
                message = timing.timeout_text(wid, outcome.last_status)
                if message is not None:
                    record["error"]["message"] = message
            carry.finish(wid, record)
        for wid, status in carry.seen.items():
            if wid not in carry.finished:
                carry.remember(wid, status)
        carry.seen.clear()
        for wid, error in carry.failed.items():
            if wid not in ended:
                self.log.warning(
                    "Portable: workflow %d: poll failed (%s); riding out the outage (tolerance %g s)",
                    wid,
                    error,
                    options.poll.outage_tolerance,
                )
        carry.failed.clear()
        return ended

    def _carried_in_store(self, context: Any) -> Any:
        """Return the task state store when this sensor keeps its wait there (reschedule mode), else None."""
        if not self.reschedule:
            return None
        store = context.get("task_state_store") if hasattr(context, "get") else None
        if store is None and not self._warned_no_store:
            self._warned_no_store = True
            self.log.warning(
                "Portable: reschedule mode without a task state store (Airflow before 3.3): after= and the "
                "outage tolerance start over at every reschedule; the sensor's timeout still bounds the wait"
            )
        return store

    def _load_carry(self, context: Any, ids: list[int]) -> _PokeCarry:
        try_number = _try_number(context)
        store = self._carried_in_store(context)
        data = store.get(CARRY_KEY) if store is not None else self._carry
        carry = _PokeCarry.load(data, ids, try_number) if data is not None else None
        if carry is None:
            carry = _PokeCarry(ids, try_number, self._execute_started or time.time())
        carry.attach()
        return carry

    def _save_carry(self, context: Any, carry: _PokeCarry) -> None:
        store = self._carried_in_store(context)
        data = carry.dump()
        if store is not None:
            store.set(CARRY_KEY, data)
        else:
            self._carry = data

    def _drop_carry(self, context: Any) -> None:
        self._carry = None
        store = self._carried_in_store(context)
        if store is not None:
            store.delete(CARRY_KEY)


CARRY_KEY = "portable_wait.poke"
"""The key under which a reschedule-mode sensor keeps its wait in the task's state store between tries."""


def _try_number(context: Any) -> int | None:
    ti = context.get("ti") if hasattr(context, "get") else None
    number = getattr(ti, "try_number", None)
    return number if isinstance(number, int) else None


class _PokeCarry:
    """What a poke-mode wait carries from one poke to the next, as JSON-able data.

    ``states`` are `WaitState.snapshot` dicts of the workflows still waited on, ``finished`` the records of
    those whose wait ended, ``last`` the last status seen of the others (for UNFINISHED and TIMEOUT records).
    The try number scopes it: a retry of the task starts a new wait, as the deferrable path does.
    """

    VERSION = 1

    def __init__(self, ids: list[int], try_number: int | None, started: float) -> None:
        self.ids = ids
        self.try_number = try_number
        self.started = started  # wall clock of the first poke: the deadline is counted from it
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.finished: dict[int, dict[str, Any]] = {}
        self.last: dict[int, dict[str, Any]] = {}
        self.seen: dict[int, WorkflowStatus] = {}  # this poke's answers, filled by the on_poll hook
        self.failed: dict[int, PortableError] = {}  # this poke's failed polls

    @classmethod
    def load(cls, data: Any, ids: list[int], try_number: int | None) -> _PokeCarry | None:
        """Return the carried wait, or None if ``data`` belongs to another wait (another try, other IDs)."""
        if not isinstance(data, dict) or data.get("version") != cls.VERSION:
            return None
        if data.get("workflow_ids") != ids or data.get("try_number") != try_number:
            return None
        carry = cls(ids, try_number, float(data["started"]))
        carry.snapshots = {int(k): v for k, v in data["states"].items()}
        carry.finished = {int(k): v for k, v in data["finished"].items()}
        carry.last = {int(k): v for k, v in data["last"].items()}
        return carry

    def dump(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "workflow_ids": self.ids,
            "try_number": self.try_number,
            "started": self.started,
            "states": {str(k): v for k, v in self.snapshots.items()},
            "finished": {str(k): v for k, v in self.finished.items()},
            "last": {str(k): v for k, v in self.last.items()},
        }

    def attach(self) -> None:
        self.seen.clear()
        self.failed.clear()

    def track(self, event: PollEvent) -> None:
        """The ``on_poll`` hook of this poke's waits: keep each answer, and each failed poll for the log."""
        if event.status is not None:
            self.seen[event.workflow_id] = event.status
        elif event.error is not None:
            self.failed[event.workflow_id] = event.error

    def states(self, options: WaitOptions, now: float) -> dict[int, WaitState]:
        """Return the `WaitState` of every unfinished workflow, restored from the last poke or new."""
        options = dataclasses.replace(options, on_poll=self.track)
        states: dict[int, WaitState] = {}
        for wid in self.ids:
            if wid in self.finished:
                continue
            snapshot = self.snapshots.get(wid)
            if snapshot is not None:
                states[wid] = WaitState.restore(snapshot, options, now)
            else:  # not polled yet: its wait, and deadline, began at the first poke
                states[wid] = WaitState(wid, options, now - (time.time() - self.started))
        return states

    def keep(self, wid: int, snapshot: dict[str, Any]) -> None:
        self.snapshots[wid] = snapshot

    def finish(self, wid: int, record: dict[str, Any]) -> None:
        # As plain JSON (a record's resources hold tuples): the task state store accepts only JSON values, and
        # the XCom then matches the deferrable path's, whose event is JSON too.
        self.finished[wid] = json.loads(json.dumps(record))
        self.snapshots.pop(wid, None)
        self.last.pop(wid, None)

    def remember(self, wid: int, status: WorkflowStatus) -> None:
        self.last[wid] = status.model_dump(mode="json", by_alias=True)

    def last_status(self, wid: int) -> WorkflowStatus | None:
        seen = self.seen.get(wid)
        if seen is not None:
            return seen
        data = self.last.get(wid)
        return WorkflowStatus.model_validate(data) if data is not None else None
