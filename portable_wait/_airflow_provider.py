"""Airflow's provider entry point (``apache_airflow_provider``): tells Airflow about the ``portable``
connection type. Kept apart from `portable_wait.airflow`, which imports Airflow: Airflow loads this while it is
itself still importing, and an import of Airflow from here would be circular.
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]


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
            }
        ],
    }
