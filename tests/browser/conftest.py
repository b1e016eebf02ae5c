"""Fixtures for browser tests (``@pytest.mark.browser``): one Chromium and one set of servers per
module, our app and the CRM shells on two different sites, third-party cookies blocked.

* ``stack`` (module): a ``CrmStack`` — our app on ``http://127.0.0.1:<p>``, sandbox Kommo and sandbox
  Bitrix24 on ``http://localhost:<q>``; ``stack.kommo_shell("/wazzup")``, ``stack.bitrix24_shell()``.
* ``playwright`` (session, from ``tests/conftest.py``): the one ``sync_playwright()`` of the run
  (only one may run per process); pass it to ``chromium(playwright, block_third_party_cookies=False)``
  for another profile.
* ``browser_context`` (session): the shared Chromium, a Playwright ``BrowserContext`` on a fresh
  profile with third-party cookies blocked, checked by the probe before any test uses it. Its
  cookies are cleared at the start of each module (ports change, but cookies ignore ports).
* ``page`` (test): a new tab in that context, closed after the test; an uncaught script error in it
  (frames included) fails the test.
* ``shot`` (test): ``shot(page, "state")`` writes ``test-output/screenshots/<module>-<test>-<state>.png``
  (``settings_kommo-roles_dialog-open.png``: ``test_`` prefixes dropped, parameters appended).

Database rows live for the whole module (installs done once are shared by its tests) and are deleted
when the module ends. A test that needs a pristine account must make its own (another Kommo account,
another Bitrix24 portal). Without ``/usr/bin/chromium`` every browser test is skipped, saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_env
from tests.support.browser import (
    CrmStack,
    chromium,
    chromium_missing_reason,
    crm_stack,
    screenshot,
    third_party_cookies_blocked,
)
from widget.db import Base, db


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = chromium_missing_reason()
    here = Path(__file__).parent
    for item in items:
        if reason and Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _clean_database() -> Iterator[None]:
    """Overrides the per-test cleaning of ``tests/conftest.py``: see ``_clean_after_module``."""
    yield


@pytest.fixture(scope="module", autouse=True)
def _clean_after_module(database_url: str) -> Iterator[None]:
    yield
    if db.url is None:
        return
    from sqlalchemy import text

    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture(scope="module")
def stack(instance_dir: Path, database_url: str) -> Iterator[CrmStack]:
    def make_env(**extra: Any) -> dict[str, str]:
        return base_env(instance_dir, database_url, **extra)

    with crm_stack(make_env) as running:
        yield running


@pytest.fixture(scope="session")
def browser_context(playwright: Any) -> Iterator[Any]:
    with chromium(playwright, block_third_party_cookies=True) as context:
        assert third_party_cookies_blocked(context), "the profile lets third-party cookies through"
        yield context


@pytest.fixture(scope="module")
def _module_cookies(browser_context: Any) -> Any:
    browser_context.clear_cookies()
    return browser_context


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(_module_cookies: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new tab; an uncaught script error in it (our frame included) fails the test. A failed
    test leaves a screenshot of it: ``test-output/screenshots/FAILED-<module>-<test>.png``."""
    tab = _module_cookies.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    if request.node.stash.get(_CALL_FAILED, False):
        module = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
        try:
            screenshot(tab, f"FAILED-{module}", request.node.name)
        except Exception as exc:  # the tab may be gone with what broke it; the failure says enough
            print(f"no screenshot of the failed test: {exc}")
    tab.close()
    assert not errors, f"uncaught script errors in the page: {errors}"


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """``shot(page, "saved")`` in ``test_settings_kommo.py::test_save[es]`` writes
    ``test-output/screenshots/settings_kommo-save-es-saved.png``."""
    node = request.node
    module = node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = f"{module}-{node.originalname.removeprefix('test_')}"
    callspec = getattr(node, "callspec", None)
    if callspec is not None:
        name += f"-{callspec.id}"

    def take(page: Any, state: str) -> Path:
        return screenshot(page, name, state)

    return take
