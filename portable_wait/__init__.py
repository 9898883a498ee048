"""portable-wait: wait for Portable data-integration workflows to finish.

Async API: `PortableClient`, `wait_for_completion`, `as_completed`, `wait_for_many`.
Blocking API: `portable_wait.sync`. Test helpers (a fake Portable server, pytest fixtures): `portable_wait.testing`.
"""

from ._client import PortableClient
from ._config import PollPolicy, RetryPolicy
from ._errors import (
    AuthenticationError,
    InvalidResponseError,
    PermissionDeniedError,
    PortableAPIError,
    PortableError,
    TransportError,
    WaitTimeoutError,
    WorkflowFailedError,
    WorkflowNotFoundError,
)
from ._fanout import as_completed, wait_for_many
from ._hub import Outcome
from ._models import Disposition, Lifecycle, ResourceStatus, WorkflowStatus
from ._polling import PollEvent, WaitKwargs, wait_for_completion
from ._telemetry import ClientStats
from ._version import __version__

__all__ = [
    "AuthenticationError",
    "ClientStats",
    "Disposition",
    "InvalidResponseError",
    "Lifecycle",
    "Outcome",
    "PermissionDeniedError",
    "PollEvent",
    "PollPolicy",
    "PortableAPIError",
    "PortableClient",
    "PortableError",
    "ResourceStatus",
    "RetryPolicy",
    "TransportError",
    "WaitKwargs",
    "WaitTimeoutError",
    "WorkflowFailedError",
    "WorkflowNotFoundError",
    "WorkflowStatus",
    "__version__",
    "as_completed",
    "wait_for_completion",
    "wait_for_many",
]
