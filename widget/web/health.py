from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from widget.web.context import get_db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    get_db().execute(text("SELECT 1"))
    return jsonify(status="ok")
