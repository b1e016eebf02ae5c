"""Per-app collaborators, bound in ``create_app`` and reached through ``app_services()``.

Business code receives these as arguments; only the web and jobs layers look them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from widget.config import Settings
from widget.crypto import TokenBox


@dataclass
class AppServices:
    settings: Settings
    box: TokenBox
    # Optional hooks tests may replace (e.g. a fake job queue). Keyed by name.
    overrides: dict[str, Any] = field(default_factory=dict)


def app_services() -> AppServices:
    services: AppServices = current_app.extensions["widget"]
    return services
