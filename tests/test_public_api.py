from __future__ import annotations

import portable_wait
import portable_wait.sync

CONTRACT = {
    "PortableClient",
    "WorkflowStatus",
    "ResourceStatus",
    "Lifecycle",
    "Disposition",
    "PollPolicy",
    "RetryPolicy",
    "wait_for_completion",
    "wait_for_many",
    "as_completed",
    "PortableError",
    "PortableAPIError",
    "AuthenticationError",
    "PermissionDeniedError",
    "WorkflowNotFoundError",
    "TransportError",
    "InvalidResponseError",
    "WorkflowFailedError",
    "WaitTimeoutError",
    "PollEvent",
    "Outcome",
    "ClientStats",
}


def test_public_api_exports_the_contract() -> None:
    assert set(portable_wait.__all__) >= CONTRACT
    for name in portable_wait.__all__:
        assert hasattr(portable_wait, name), name


def test_public_api_all_is_sorted() -> None:
    assert portable_wait.__all__ == sorted(portable_wait.__all__)


def test_public_api_sync_module() -> None:
    assert callable(portable_wait.sync.wait_for_completion)
    assert callable(portable_wait.sync.wait_for_many)


def test_public_api_exception_tree() -> None:
    pw = portable_wait
    for name in ("AuthenticationError", "PermissionDeniedError", "WorkflowNotFoundError"):
        assert issubclass(getattr(pw, name), pw.PortableAPIError)
    for name in ("PortableAPIError", "TransportError", "InvalidResponseError", "WorkflowFailedError"):
        assert issubclass(getattr(pw, name), pw.PortableError)
    assert issubclass(pw.WaitTimeoutError, TimeoutError)
    assert issubclass(pw.WaitTimeoutError, pw.PortableError)


def test_public_api_ships_py_typed() -> None:
    from importlib.resources import files

    assert files("portable_wait").joinpath("py.typed").is_file()


def test_public_api_outcome_alias() -> None:
    assert portable_wait.Outcome == portable_wait.WorkflowStatus | portable_wait.PortableError
