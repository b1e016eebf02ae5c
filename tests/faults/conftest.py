"""The fault suite's marker (registered here so the suite stays self-contained)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: the reduced fault and load suite (PostgreSQL, Redis, gunicorn, job workers)"
    )
