"""``GET /`` says what this server is, in the visitor's language; only the embedded default leads to
the sandboxes."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from widget import create_app

RU_HEADING = "Чаты Wazzup для Kommo и Битрикс24"  # noqa: RUF001  (Cyrillic on purpose)


def _client(make_settings: Any, **env: Any) -> FlaskClient:
    return create_app(make_settings(**env)).test_client()


def test_the_embedded_default_leads_to_the_sandbox_crms_and_gateway(make_settings: Any):
    client = _client(make_settings, SANDBOX_KOMMO_PORT=6201, SANDBOX_BITRIX24_PORT=6202, SANDBOX_GATEWAY_PORT=6203)
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<h1>Wazzup chats for Kommo and Bitrix24</h1>" in html
    assert 'href="http://localhost:6201/shell" data-testid="sandbox-kommo"' in html
    assert 'href="http://localhost:6202/shell" data-testid="sandbox-bitrix24"' in html
    assert 'href="http://localhost:6203/" data-testid="sandbox-gateway"' in html
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert set(page.vary) >= {"Accept", "Accept-Language"}
    api = client.get("/", headers={"Accept": "application/json"})
    assert api.get_json() == {
        "service": "wazzup-crm-widget",
        "health": "/healthz",
        "sandbox": {
            "kommo": "http://localhost:6201/shell",
            "bitrix24": "http://localhost:6202/shell",
            "gateway": "http://localhost:6203/",
        },
    }


def test_with_a_real_gateway_configured_the_sandbox_gateway_is_not_offered(make_settings: Any):
    html = _client(make_settings, GATEWAY_URL="https://gateway.example.test/v1").get("/").get_data(as_text=True)
    assert 'data-testid="sandbox-kommo"' in html
    assert "sandbox-gateway" not in html and "gateway.example.test" not in html


def test_production_names_nothing_but_itself(make_settings: Any):
    client = _client(
        make_settings,
        SANDBOX="0",
        GATEWAY_URL="https://gateway.example.test/v1",
        KOMMO_CLIENT_ID="real-id",
        KOMMO_CLIENT_SECRET="real-secret",
    )
    html = client.get("/").get_data(as_text=True)
    assert "Wazzup chats for Kommo and Bitrix24" in html
    for leak in ("sandbox", "Sandbox", "localhost", "shell", "gateway.example.test", "5001", "5002", "5003"):
        assert leak not in html
    assert client.get("/", headers={"Accept": "application/json"}).get_json() == {
        "service": "wazzup-crm-widget",
        "health": "/healthz",
    }


@pytest.mark.parametrize(
    ("headers", "query", "lang", "heading"),
    [
        ({"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}, "", "es", "Chats de Wazzup para Kommo y Bitrix24"),
        ({"Accept-Language": "pt-BR"}, "", "pt", "Chats do Wazzup para Kommo e Bitrix24"),
        ({"Accept-Language": "de-DE,ru;q=0.8"}, "", "ru", RU_HEADING),
        ({"Accept-Language": "es"}, "?lang=ru", "ru", RU_HEADING),
        ({"Accept-Language": "de-DE"}, "", "en", "Wazzup chats for Kommo and Bitrix24"),
    ],
)
def test_the_page_speaks_the_visitors_language(make_settings: Any, headers: dict, query: str, lang: str, heading: str):
    html = _client(make_settings).get("/" + query, headers=headers).get_data(as_text=True)
    assert f'<html lang="{lang}">' in html
    assert f"<h1>{heading}</h1>" in html
