from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from widget.config import ConfigError, Settings


def env(tmp_path, **kw):
    """The embedded default, chosen explicitly (as ``python server.py`` does); SANDBOX=None leaves it unset."""
    base = {"INSTANCE_PATH": str(tmp_path), "SANDBOX": "1"}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def production(tmp_path, **kw):
    """Everything a production start needs; a keyword set to None leaves that variable out."""
    complete = {
        "SANDBOX": None,
        "SECRET_KEY": "x" * 32,
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PUBLIC_URL": "https://chats.example.com",
        "DATABASE_URL": "postgresql://widget@db.example.com/widget",
        "GATEWAY_URL": "https://gateway.example.com/v1/messages",
        "KOMMO_CLIENT_ID": "id",
        "KOMMO_CLIENT_SECRET": "secret",
    }
    return env(tmp_path, **(complete | kw))


def test_embedded_default_generates_and_keeps_secrets(tmp_path):
    first = Settings.from_env(env(tmp_path))
    second = Settings.from_env(env(tmp_path))
    assert first.sandbox is True
    assert first.secret_key == second.secret_key
    assert first.token_keys == second.token_keys
    assert first.database_url.startswith("sqlite:///")
    assert first.kommo_domains == ("kommo.test",)
    assert "{host}" in first.kommo_base_url


def test_environment_wins_over_the_embedded_default(tmp_path):
    s = Settings.from_env(
        env(tmp_path, KOMMO_DOMAINS="kommo.com, amocrm.ru", KOMMO_BASE_URL="https://{host}", PORT="8080")
    )
    assert s.kommo_domains == ("kommo.com", "amocrm.ru")
    assert s.kommo_base_url == "https://{host}"
    assert s.port == 8080


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("PORT", "eighty", "PORT"),
        ("PORT", "70000", "PORT"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("PUBLIC_URL", "not a url", "PUBLIC_URL"),
        ("KOMMO_BASE_URL", "https://api.example.com", "KOMMO_BASE_URL"),
        ("TOKEN_ENCRYPTION_KEY", "short", "TOKEN_ENCRYPTION_KEY"),
        ("SANDBOX", "maybe", "SANDBOX"),
        ("KOMMO_DOMAINS", "https://kommo.com", "KOMMO_DOMAINS"),
        ("REDIS_URL", "http://localhost", "REDIS_URL"),
        ("PROXY_HOPS", "one", "PROXY_HOPS"),
        ("PROXY_HOPS", "9", "PROXY_HOPS"),
    ],
)
def test_malformed_variable_is_named(tmp_path, name, value, fragment):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(tmp_path, **{name: value}))
    assert fragment in str(info.value)


def test_a_start_that_does_not_choose_the_sandbox_is_production_and_names_everything_missing(tmp_path):
    """``gunicorn server:app`` with an empty environment: one message naming every missing setting,
    and neither the sandbox's credentials nor secrets generated into the instance folder."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(tmp_path, SANDBOX=None))
    message = str(info.value)
    for name in ("SECRET_KEY", "TOKEN_ENCRYPTION_KEY", "PUBLIC_URL", "DATABASE_URL", "GATEWAY_URL"):
        assert f"  - {name}: " in message
    assert "KOMMO_CLIENT_ID and KOMMO_CLIENT_SECRET, or BITRIX24_CLIENT_ID and BITRIX24_CLIENT_SECRET" in message
    assert "missing 6 setting(s)" in message and "python server.py" in message
    assert list(tmp_path.iterdir()) == []  # no generated secret_key / token_key
    with pytest.raises(ConfigError, match="missing 6"):
        Settings.from_env(env(tmp_path, SANDBOX="0"))


def test_production_names_only_what_is_missing(tmp_path):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(production(tmp_path, SECRET_KEY=None, GATEWAY_URL=None, KOMMO_CLIENT_SECRET=None))
    message = str(info.value)
    assert "missing 3 setting(s)" in message
    assert "  - SECRET_KEY: " in message and "  - GATEWAY_URL: " in message
    assert "  - KOMMO_CLIENT_SECRET: set together with KOMMO_CLIENT_ID" in message
    assert "TOKEN_ENCRYPTION_KEY" not in message and "PUBLIC_URL" not in message


def test_production_settings_are_taken_as_given(tmp_path):
    s = Settings.from_env(production(tmp_path))
    assert s.sandbox is False
    assert s.kommo_enabled and not s.bitrix24_enabled
    assert s.kommo_client_id == "id"
    assert s.kommo_domains == ("kommo.com", "amocrm.ru", "amocrm.com")
    assert s.kommo_base_url == "https://{host}"
    assert s.bitrix24_oauth_url == "https://oauth.bitrix.info"
    assert s.gateway_url == "https://gateway.example.com/v1/messages"
    b24 = Settings.from_env(
        production(
            tmp_path,
            KOMMO_CLIENT_ID=None,
            KOMMO_CLIENT_SECRET=None,
            BITRIX24_CLIENT_ID="app.1",
            BITRIX24_CLIENT_SECRET="s",
        )
    )
    assert b24.bitrix24_enabled and not b24.kommo_enabled
    assert list(tmp_path.iterdir()) == []


def test_production_public_url_is_https_except_on_loopback(tmp_path):
    with pytest.raises(ConfigError, match="PUBLIC_URL must be an https:// address"):
        Settings.from_env(production(tmp_path, PUBLIC_URL="http://chats.example.com"))
    assert Settings.from_env(production(tmp_path, PUBLIC_URL="http://127.0.0.1:8000")).public_url.startswith("http:")


def test_pool_size_per_process_is_configurable(tmp_path):
    s = Settings.from_env(env(tmp_path))
    assert (s.db_pool_size, s.db_max_overflow) == (10, 20)
    s = Settings.from_env(env(tmp_path, DB_POOL_SIZE="4", DB_MAX_OVERFLOW="0"))
    assert (s.db_pool_size, s.db_max_overflow) == (4, 0)
    with pytest.raises(ConfigError, match="DB_POOL_SIZE"):
        Settings.from_env(env(tmp_path, DB_POOL_SIZE="0"))
    with pytest.raises(ConfigError, match="DB_MAX_OVERFLOW"):
        Settings.from_env(env(tmp_path, DB_MAX_OVERFLOW="many"))


def test_postgres_urls_use_psycopg(tmp_path):
    s = Settings.from_env(env(tmp_path, DATABASE_URL="postgresql://postgres@127.0.0.1/test"))
    assert s.database_url.startswith("postgresql+psycopg://")
