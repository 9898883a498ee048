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
    "WaitKwargs",
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


def test_public_api_wait_keywords_are_one_list_everywhere() -> None:
    """`wait_for_completion` spells its keywords out (a ``**kwargs`` dict would live in the frame of every waiting
    task); this keeps that list, `WaitOptions` and `WaitKwargs` the same names with the same defaults."""
    import dataclasses
    import inspect
    import typing

    from portable_wait._polling import WAIT_KEYWORDS, WaitOptions

    declared = typing.get_type_hints(portable_wait.WaitKwargs)
    assert set(declared) == WAIT_KEYWORDS
    function = inspect.signature(portable_wait.wait_for_completion).parameters
    build = inspect.signature(WaitOptions.build).parameters
    fields = {f.name: f.default for f in dataclasses.fields(WaitOptions)}
    assert [n for n, p in function.items() if p.kind is p.KEYWORD_ONLY] == list(declared)
    assert [n for n, p in build.items() if p.kind is p.KEYWORD_ONLY] == list(declared)
    assert list(fields) == list(declared)
    for name in declared:
        assert function[name].default == build[name].default == fields[name], name
