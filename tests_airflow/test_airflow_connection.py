"""Point 2 of issue 12: the connection form as Airflow 3 reads it (no FAB/wtforms), and the Test button."""

from __future__ import annotations

import json
import logging
import socket

import pytest
from airflow.models.connection import Connection as CoreConnection
from airflow.providers_manager import ProvidersManager

from portable_wait.airflow import PROBE_WORKFLOW_ID, PortableHook, get_provider_info
from portable_wait.testing import FakePortable


def test_airflow_provider_registers_the_connection_type() -> None:
    connection_type = get_provider_info()["connection-types"][0]
    assert connection_type["connection-type"] == "portable"
    assert connection_type["hook-class-name"] == "portable_wait.airflow.PortableHook"
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hooks = ProvidersManagerTaskRuntime().hooks  # type: ignore[no-untyped-call]
    hook_info = hooks["portable"]
    assert hook_info is not None and hook_info.hook_class_name == "portable_wait.airflow.PortableHook"


def test_airflow_form_metadata_as_the_providers_manager_reports_it(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ImportError):  # a plain install: the FAB/wtforms extras are absent
        __import__("wtforms")
    caplog.set_level(logging.INFO)
    manager = ProvidersManager()  # type: ignore[no-untyped-call]
    assert manager.field_behaviours["portable"] == {
        "hidden_fields": ["schema", "login", "port", "extra"],
        "relabeling": {"host": "Base URL", "password": "API key"},
        "placeholders": {"host": "https://api.portable.io (leave empty for Portable's public API)"},
    }
    widget = manager.connection_form_widgets["extra__portable__test_workflow_id"]
    assert widget.field_name == "test_workflow_id" and not widget.is_sensitive
    assert widget.field["schema"]["title"] == "Test workflow ID"
    assert "not fully initialized" not in caplog.text


def test_airflow_form_metadata_as_the_ui_receives_it() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "portable"]
    fields = meta.model_dump()["standard_fields"]
    assert fields["password"] == {"hidden": False, "title": "API key", "placeholder": None}
    assert fields["host"]["title"] == "Base URL" and not fields["host"]["hidden"]
    assert all(fields[name]["hidden"] for name in ("port", "login", "url_schema"))
    assert meta.extra_fields is not None
    assert meta.extra_fields["test_workflow_id"]["schema"]["type"] == ["integer", "null"]


def define(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "portable", **fields}))


def test_airflow_test_connection_good_key(fake: FakePortable) -> None:
    ok, message = PortableHook().test_connection()
    assert ok, message
    assert f"{fake.base_url} accepted the API key" in message and "404 Not Found" in message
    assert "not that the key can see your workflows" in message
    assert [(r.workflow_id, r.status) for r in fake.requests] == [(PROBE_WORKFLOW_ID, 404)]


def test_airflow_test_connection_bad_key(fake: FakePortable, monkeypatch: pytest.MonkeyPatch) -> None:
    define(monkeypatch, "portable_bad", host=fake.base_url, password="not-the-key")
    ok, message = PortableHook("portable_bad").test_connection()
    assert not ok
    assert "rejected the API key (401 Unauthorized)" in message
    assert "not-the-key" not in message


def test_airflow_test_connection_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    define(monkeypatch, "portable_gone", host=f"http://127.0.0.1:{port}", password="secret-key")
    ok, message = PortableHook("portable_gone").test_connection()
    assert not ok
    assert f"could not check the key at http://127.0.0.1:{port}" in message
    assert "secret-key" not in message


def test_airflow_test_connection_with_a_test_workflow(fake: FakePortable, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_workflow(5, running=60)
    fake.add_workflow(6, forbidden=True)
    for wid, passes, text in [
        (5, True, "can read workflow 5 (now RUNNING"),
        (6, False, "403 Forbidden"),
        (7, False, "workflow 7 was not found (404)"),
    ]:
        define(monkeypatch, "portable_t", host=fake.base_url, password=fake.api_key, extra={"test_workflow_id": wid})
        ok, message = PortableHook("portable_t").test_connection()
        assert (ok, text in message) == (passes, True), message
    define(monkeypatch, "portable_t", host=fake.base_url, password=fake.api_key, extra={"test_workflow_id": "x"})
    ok, message = PortableHook("portable_t").test_connection()
    assert not ok and "Test workflow ID must be a positive integer" in message


def test_airflow_test_connection_through_airflows_connection_model(fake: FakePortable) -> None:
    # What the API server's test endpoint calls: Connection.test_connection() -> get_hook() -> our hook.
    connection = CoreConnection(
        conn_id="portable_default", conn_type="portable", host=fake.base_url, password=fake.api_key
    )
    ok, message = connection.test_connection()  # type: ignore[no-untyped-call]
    assert ok, message


async def test_airflow_test_connection_from_inside_an_event_loop(fake: FakePortable) -> None:
    ok, message = PortableHook().test_connection()  # runs its probe in a thread of its own
    assert ok, message
