"""Access logs carry no credential (findings 2 and 3): neither the built-in server's request log
(``python server.py``) nor gunicorn's access log with the README's logger class shows a session or
launch token, an authorization code, or a Kommo webhook token."""

from __future__ import annotations

import datetime
import logging
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from gunicorn.config import Config

from tests.support.factories import identity, make_account, seed_crm, session_token
from tests.support.kommo_sandbox import serving_ours
from widget import create_app
from widget.access_log import GunicornLogger, redact

SESSION = "eyJhY2NvdW50X2lkIjoxfQ.SESSION-TOKEN-value_123"
WEBHOOK = "WEBHOOK-token-" + "w" * 30


def test_the_built_in_servers_request_log_shows_no_token(make_settings: Any, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="werkzeug")
    holder: dict[str, Any] = {}

    def build(url: str) -> Any:
        holder["app"] = create_app(make_settings(PUBLIC_URL=url))
        return holder["app"]

    with serving_ours(build) as ours:
        account_id = make_account()
        seed_crm(account_id)
        token = session_token(holder["app"], identity(account_id))
        opened = requests.get(f"{ours.url}/app", params={"st": token}, timeout=10)
        assert opened.status_code == 200
        requests.get(f"{ours.url}/app/launch", params={"lt": "LAUNCH-token-abc"}, timeout=10)
        requests.get(f"{ours.url}/kommo/oauth/callback", params={"code": "def502CODE", "referer": "x"}, timeout=10)
        requests.post(f"{ours.url}/kommo/webhooks/{WEBHOOK}", data={"account[id]": "1"}, timeout=10)

    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    logged = "\n".join(lines)
    assert "/app?st=[redacted]" in logged, logged  # the line is still there, masked
    for secret in (token, "LAUNCH-token-abc", "def502CODE", WEBHOOK):
        assert secret not in logged


def _gunicorn_line(fmt: str, path: str, query: str, headers: list[tuple[str, str]]) -> str:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", fmt)
    logger = GunicornLogger(cfg)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": path + ("?" + query if query else ""),
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.1",
        "HTTP_REFERER": f"https://chats.example.com/app?st={SESSION}",
        "HTTP_X_SESSION_TOKEN": SESSION,
    }
    resp = SimpleNamespace(status="200 OK", sent=10, headers=[("Content-Type", "text/html")])
    req = SimpleNamespace(headers=headers)
    atoms = logger.atoms(resp, req, environ, datetime.timedelta(milliseconds=3))
    return fmt % atoms


@pytest.mark.parametrize(
    ("path", "query"),
    [("/app", f"st={SESSION}&channel=3"), (f"/kommo/webhooks/{WEBHOOK}", ""), ("/app/launch", "lt=LAUNCH&next=chats")],
)
def test_gunicorns_access_log_with_our_logger_class_shows_no_token(path: str, query: str):
    fmt = (
        '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(U)s %(q)s '
        "%({x-session-token}i)s %({http_x_session_token}e)s %({query_string}e)s"
    )
    line = _gunicorn_line(fmt, path, query, [("X-SESSION-TOKEN", SESSION)])
    for secret in (SESSION, WEBHOOK, "LAUNCH"):
        assert secret not in line, line
    assert "[redacted]" in line


def test_redact_keeps_what_is_not_a_credential():
    assert redact("/app/chats?entity_type=lead&entity_id=7") == "/app/chats?entity_type=lead&entity_id=7"
    assert redact("/app?channel=1&st=abc&x=1") == "/app?channel=1&st=[redacted]&x=1"
    assert redact("/kommo/webhooks/abc?x=1") == "/kommo/webhooks/[redacted]?x=1"
