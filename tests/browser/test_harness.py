"""The browser harness can tell blocked third-party cookies from allowed ones, and serves our app and
the CRM shells on two different sites."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.browser import CrmStack, chromium, third_party_cookies_blocked

pytestmark = pytest.mark.browser


def test_the_probe_sees_cookies_blocked_in_the_shared_profile(browser_context: Any) -> None:
    assert third_party_cookies_blocked(browser_context)


def test_the_probe_sees_cookies_flow_when_the_profile_allows_them(playwright: Any) -> None:
    # The control: without it a blind probe (e.g. a Lax cookie, never sent cross-site) would "pass".
    with chromium(playwright, block_third_party_cookies=False) as context:
        assert not third_party_cookies_blocked(context)


def test_our_app_and_the_shells_are_on_different_sites(stack: CrmStack) -> None:
    ours = urlsplit(stack.ours).hostname
    assert ours == "127.0.0.1"
    assert urlsplit(stack.kommo_shell()).hostname == "localhost"
    assert urlsplit(stack.bitrix24_shell()).hostname == "localhost"
