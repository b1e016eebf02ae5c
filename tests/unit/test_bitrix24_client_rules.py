"""Bitrix24 error codes become our error types; refresh tokens only go to the configured server."""

from __future__ import annotations

import pytest

from widget.config import Settings
from widget.crm.bitrix24.client import BatchResult
from widget.crm.bitrix24.errors import error_for
from widget.crm.bitrix24.provider import Bitrix24Provider, normalise_domain
from widget.crm.errors import (
    CrmAuthError,
    CrmBadResponse,
    CrmForbidden,
    CrmNotFound,
    CrmRateLimited,
    CrmTokenExpired,
    CrmUnavailable,
)


@pytest.mark.parametrize(
    ("code", "description", "status", "kind"),
    [
        ("expired_token", "The access token provided has expired.", 401, CrmTokenExpired),
        ("NO_AUTH_FOUND", "Wrong authorization data", 401, CrmAuthError),
        ("APPLICATION_NOT_FOUND", "Application not found", 401, CrmAuthError),
        ("insufficient_scope", "…", 401, CrmForbidden),  # core says 401, docs 403: the code decides
        ("QUERY_LIMIT_EXCEEDED", "Too many requests", 503, CrmRateLimited),
        ("INTERNAL_SERVER_ERROR", "", 500, CrmUnavailable),
        ("", "Not found", 400, CrmNotFound),
        ("", "Access denied", 400, CrmForbidden),
        ("", "Parameter 'fields' must be array.", 400, CrmBadResponse),
        ("ERROR_METHOD_NOT_FOUND", "Method not found!", 404, CrmNotFound),
    ],
)
def test_error_codes_map_to_our_types(code, description, status, kind):
    error = error_for(code, description, status=status)
    assert type(error) is kind
    assert error.details["error"] == code


def test_expired_token_is_an_auth_error_that_a_refresh_fixes():
    assert isinstance(error_for("expired_token", ""), CrmAuthError)


def test_batch_results_raise_the_command_error():
    batch = BatchResult(
        results={"c": 46}, errors={"d": {"error": "", "error_description": "Not found"}}, totals={}, nexts={}
    )
    assert batch.get("c") == 46
    with pytest.raises(CrmNotFound):
        batch.get("d")
    with pytest.raises(CrmBadResponse):
        batch.get("never-ran")


def _provider(tmp_path, url="https://oauth.bitrix.info") -> Bitrix24Provider:
    return Bitrix24Provider(
        Settings.from_env({"SANDBOX": "1", "INSTANCE_PATH": str(tmp_path), "BITRIX24_OAUTH_URL": url})
    )


def test_token_url_comes_from_the_server_endpoint_of_the_configured_host(tmp_path):
    provider = _provider(tmp_path)
    assert provider.token_url("https://oauth.bitrix.info/rest/") == "https://oauth.bitrix.info/oauth/token/"
    assert provider.token_url(None) == "https://oauth.bitrix.info/oauth/token/"
    for foreign in ("https://oauth.bitrix24.tech/rest/", "http://oauth.bitrix.info/rest/", "https://evil.test/rest/"):
        with pytest.raises(CrmAuthError):
            provider.token_url(foreign)
    sandbox = _provider(tmp_path, "http://localhost:5002/oauth-server")
    assert (
        sandbox.token_url("http://localhost:5002/oauth-server/rest/")
        == "http://localhost:5002/oauth-server/oauth/token/"
    )


def test_domains_compare_without_default_ports():
    assert normalise_domain("Portal.Bitrix24.com:443") == "portal.bitrix24.com"
    assert normalise_domain("localhost:5002") == "localhost:5002"
