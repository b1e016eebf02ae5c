"""Headless Chromium for browser tests of our pages inside a cross-site CRM iframe.

The recipe and its pitfalls are in ``/work/shared/browser-testing.md``. In short:

* our app is served on ``http://127.0.0.1:<p>`` and every CRM shell on ``http://localhost:<q>`` —
  two different *sites* (the port never makes a site), both loopback, both secure contexts;
* the profile is fresh and third-party cookies are switched by ``cookie_controls_mode`` in
  ``Default/Preferences`` written before launch (1 = blocked, 0 = allowed; nothing else works);
* ``third_party_cookies_blocked(context)`` proves the state in that very profile, so a test cannot
  pass because cookies quietly flowed (or fail because the probe is blind: see the control test).

Use::

    from tests.support.browser import chromium, crm_stack, screenshot, third_party_cookies_blocked

    with sync_playwright() as p, chromium(p) as context:   # blocked third-party cookies
        assert third_party_cookies_blocked(context)
        page = context.new_page()
        page.goto(stack.kommo_shell("/wazzup"))
        frame = page.frame_locator("#work-area-wazzup iframe")
        screenshot(page, "my_test", "saved")          # test-output/screenshots/my_test-saved.png

``tests/browser/conftest.py`` wraps these in fixtures (``playwright``, ``browser_context``, ``page``,
``stack``, ``shot``); read its docstring first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask

from tests.support.bitrix24_sandbox import B24World, Bitrix24Sandbox, free_port
from tests.support.jobs import run_jobs_inline
from tests.support.kommo_sandbox import DEMO_HOST, RunningKommo, running_kommo
from tests.support.servers import live_server
from tests.support.tls import Certificate, TlsFront
from widget import create_app
from widget.config import Settings

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
# Cheap, quiet and offline: no background fetches, no component updates, no QUIC.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
COOKIE_BLOCK = 1  # cookie_controls_mode: block third-party cookies
COOKIE_ALLOW = 0
# Playwright's default waits are 30 s; a page of ours answers in milliseconds on loopback, so a
# shorter wait fails a broken test sooner without making a correct one flaky.
DEFAULT_TIMEOUT_MS = 10_000


def chromium_missing_reason() -> str | None:
    """Why browser tests cannot run here, or ``None``. Only a missing Chromium skips them."""
    if not os.path.exists(CHROMIUM):
        return f"Debian's Chromium is not installed at {CHROMIUM}"
    return None


def write_profile(profile_dir: Path, *, cookie_mode: int) -> None:
    """Seed a fresh profile so Chromium starts with the wanted third-party-cookie setting."""
    default = profile_dir / "Default"
    default.mkdir(parents=True, exist_ok=True)
    (default / "Preferences").write_text(json.dumps({"profile": {"cookie_controls_mode": cookie_mode}}))


@contextmanager
def chromium(
    playwright: Any,
    *,
    block_third_party_cookies: bool = True,
    locale: str = "en-US",
    viewport: tuple[int, int] = (1280, 900),
    extra_args: tuple[str, ...] = (),
) -> Iterator[Any]:
    """A Playwright ``BrowserContext`` on a fresh temporary profile (deleted afterwards).

    ``playwright`` is the object ``sync_playwright()`` starts; only one may run per process, so the
    browser conftest starts it once per session (fixture ``playwright``). One launch costs 1 to 3 s on two
    cores: share the context (fixture ``browser_context``)."""
    profile = Path(tempfile.mkdtemp(prefix="wz-chromium-"))
    write_profile(profile, cookie_mode=COOKIE_BLOCK if block_third_party_cookies else COOKIE_ALLOW)
    try:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            # A desktop's screen holds the window; headless Chromium says 800x600 otherwise, and
            # Playwright's screen emulation does not reach cross-origin frames. Our page in a Bitrix24
            # frame reads it (static/frame.js: the chat panel takes about a screen at most).
            args=[*CHROMIUM_ARGS, f"--screen-info={{0,0 {viewport[0]}x{viewport[1]}}}", *extra_args],
            locale=locale,
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# --- the third-party cookie probe ---------------------------------------------------------------------


def _probe_app() -> Flask:
    """``/top`` (opened on localhost) frames ``/set`` on 127.0.0.1: a cross-site iframe that sets a
    ``SameSite=None; Secure`` cookie (loopback is a secure context) and then reloads itself to report
    whether the cookie came back."""
    app = Flask("third-party-cookie-probe")

    @app.get("/top")
    def top() -> str:
        target = app.config["FRAME_URL"]
        return f'<!doctype html><title>probe</title><iframe id="probe" src="{target}"></iframe>'

    @app.get("/set")
    def set_cookie() -> Any:
        response = app.response_class(
            '<!doctype html><p id="state">setting</p><script>location.replace("/check")</script>'
        )
        response.set_cookie("wz_probe", "1", samesite="None", secure=True)
        return response

    @app.get("/check")
    def check() -> str:
        from flask import request

        got = "sent" if request.cookies.get("wz_probe") == "1" else "missing"
        access = request.headers.get("Sec-Fetch-Storage-Access", "")
        return f'<!doctype html><p id="state" data-storage-access="{access}">{got}</p>'

    return app


def third_party_cookies_blocked(context: Any, certificate: Certificate | None = None) -> bool:
    """Does this browser profile refuse cookies to a cross-site iframe? Run it in the same context
    the test uses; ``tests/browser/test_harness.py`` shows it answers ``False`` with mode 0.

    With a ``certificate`` the probe runs in the production shape: the top page on
    ``https://probe.crm.test:<p>`` frames ``https://probe.app.test:<q>``, each behind a TLS front
    (the context must map ``*.test`` to loopback and accept the certificate)."""
    app = _probe_app()
    with live_server(app) as server, ExitStack() as fronts:
        top, frame = f"http://localhost:{server.port}", f"http://127.0.0.1:{server.port}"
        if certificate is not None:
            top_front, frame_front = TlsFront(certificate, server.port), TlsFront(certificate, server.port)
            fronts.callback(top_front.stop)
            fronts.callback(frame_front.stop)
            top, frame = top_front.origin("probe.crm.test"), frame_front.origin("probe.app.test")
        app.config["FRAME_URL"] = f"{frame}/set"
        page = context.new_page()
        try:
            page.goto(f"{top}/top")
            state = page.frame_locator("#probe").locator("#state")
            state.filter(has_text=re.compile("^(sent|missing)$")).wait_for()
            result = state.inner_text().strip()
        finally:
            page.close()
    return result == "missing"


# --- screenshots ----------------------------------------------------------------------------------------


def screenshot(page: Any, test_name: str, state: str) -> Path:
    """Save ``test-output/screenshots/<test>-<state>.png`` (full page) and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test_name}-{state}")
    path = SCREENSHOTS / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- our app and both sandbox CRMs, on two sites ---------------------------------------------------------


@dataclass
class CrmStack:
    """Our app on ``http://127.0.0.1:<p>``; sandbox Kommo and sandbox Bitrix24 each on
    ``http://localhost:<port>`` (a different site from ours), their shells included."""

    ours: str
    app: Flask
    settings: Settings
    kommo: RunningKommo
    bitrix24: B24World

    @property
    def kommo_origin(self) -> str:
        return self.kommo.url.replace("://127.0.0.1:", "://localhost:")

    def kommo_shell(self, path: str = "", **query: Any) -> str:
        """The Kommo shell, e.g. ``kommo_shell("/wazzup", user=7)``; ``account`` defaults to the demo."""
        query.setdefault("account", DEMO_HOST)
        return f"{self.kommo_origin}/shell{path}?{urlencode(query)}"

    @property
    def bitrix24_origin(self) -> str:
        return self.bitrix24.portal.origin

    def bitrix24_shell(self, path: str = "", **query: Any) -> str:
        """The Bitrix24 portal's shell, e.g. ``bitrix24_shell(open="app")``."""
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{self.bitrix24_origin}/shell{path}{suffix}"


@contextmanager
def crm_stack(make_env: Callable[..., dict[str, str]], **env: Any) -> Iterator[CrmStack]:
    """Start sandbox Kommo, sandbox Bitrix24 and our app (jobs run immediately, in-process).

    ``make_env(**extra)`` returns the environment for ``Settings.from_env`` (the browser conftest
    passes the test database's); ``env`` overrides it."""
    with ExitStack() as stack:
        kommo = stack.enter_context(running_kommo())
        # The shell and the API must share the origin our app sees as Kommo's (CORS, frame-ancestors).
        kommo_origin = kommo.url.replace("://127.0.0.1:", "://localhost:")
        kommo.sandbox.base_url = kommo_origin
        b24 = Bitrix24Sandbox()
        stack.callback(b24.stop)
        port = free_port()
        ours = f"http://127.0.0.1:{port}"
        values: dict[str, Any] = {
            **kommo.env(KOMMO_BASE_URL=f"{kommo_origin}/{{host}}"),
            "PUBLIC_URL": ours,
            "BITRIX24_OAUTH_URL": b24.oauth_url,
            "SANDBOX_BITRIX24_PORT": b24.port,
            "HTTP_TIMEOUT": 5,
        }
        values.update(env)
        settings = Settings.from_env(make_env(**values))
        kommo.point_at(ours)
        b24.register(settings.public_url)
        portal = b24.add_portal("localhost", name="Acme (test)")
        application = create_app(settings)
        application.config["TESTING"] = True
        run_jobs_inline(application)
        server = stack.enter_context(live_server(application, port=port))
        world = B24World(b24, b24.state, application, settings, server.url, portal)
        yield CrmStack(ours=server.url, app=application, settings=settings, kommo=kommo, bitrix24=world)
