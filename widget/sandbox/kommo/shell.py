"""The CRM shell (placeholder until the full page lands)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("kommo_shell", __name__)
