"""Airflow's provider entry point (``apache_airflow_provider``): tells Airflow about the ``portable``
connection type. Kept apart from `portable_wait.airflow`, which imports Airflow: Airflow loads this while it is
itself still importing, and an import of Airflow from here would be circular.

The connection form is declared here, not by ``PortableHook.get_ui_field_behaviour()``: from Airflow 3.2 the
ProvidersManager reads ``ui-field-behaviour`` and ``conn-fields`` from the provider info without importing the
hook, while the hook methods are read only when the FAB/wtforms extras are installed (a plain install shows a form
with no "API key"). This module imports nothing heavy, so the API server can read it cheaply.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONNECTION_FIELDS", "FIELD_BEHAVIOUR", "TEST_WORKFLOW_FIELD", "get_provider_info"]

TEST_WORKFLOW_FIELD = "test_workflow_id"
"""The connection's extra field naming a workflow that the UI's Test button should read (optional)."""

FIELD_BEHAVIOUR: dict[str, Any] = {
    # The base URL carries any port (``https://host:8443``); a port set on the connection (a URI, JSON) is kept.
    "hidden-fields": ["schema", "login", "port", "extra"],
    "relabeling": {"host": "Base URL", "password": "API key"},
    "placeholders": {"host": "https://api.portable.io (leave empty for Portable's public API)"},
}

CONNECTION_FIELDS: dict[str, Any] = {
    TEST_WORKFLOW_FIELD: {
        "label": "Test workflow ID",
        "description": (
            "Optional. A workflow the Test button reads, to prove the key can see it. Empty: the Test button "
            "proves only that the base URL accepts the key."
        ),
        "schema": {"type": ["integer", "null"], "minimum": 1},
    }
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow's ProvidersManager reads."""
    return {
        "package-name": "portable-wait",
        "name": "Portable",
        "description": "Wait for Portable data-integration workflows to finish.",
        "connection-types": [
            {
                "connection-type": "portable",
                "hook-class-name": "portable_wait.airflow.PortableHook",
                "hook-name": "Portable",
                "ui-field-behaviour": FIELD_BEHAVIOUR,
                "conn-fields": CONNECTION_FIELDS,
            }
        ],
    }
