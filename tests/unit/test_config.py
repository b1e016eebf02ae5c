from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from widget.config import ConfigError, Settings


def env(tmp_path, **kw):
    base = {"INSTANCE_PATH": str(tmp_path)}
    base.update(kw)
    return base


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


def test_production_requires_secrets(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env(env(tmp_path, SANDBOX="0"))
    with pytest.raises(ConfigError, match="TOKEN_ENCRYPTION_KEY"):
        Settings.from_env(env(tmp_path, SANDBOX="0", SECRET_KEY="x" * 32))
    with pytest.raises(ConfigError, match="KOMMO_CLIENT_ID"):
        Settings.from_env(
            env(tmp_path, SANDBOX="0", SECRET_KEY="x" * 32, TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode())
        )
    s = Settings.from_env(
        env(
            tmp_path,
            SANDBOX="0",
            SECRET_KEY="x" * 32,
            TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode(),
            KOMMO_CLIENT_ID="id",
            KOMMO_CLIENT_SECRET="secret",
        )
    )
    assert s.kommo_enabled and not s.bitrix24_enabled
    assert s.kommo_domains == ("kommo.com", "amocrm.ru", "amocrm.com")
    assert s.bitrix24_oauth_url == "https://oauth.bitrix.info"


def test_postgres_urls_use_psycopg(tmp_path):
    s = Settings.from_env(env(tmp_path, DATABASE_URL="postgresql://postgres@127.0.0.1/test"))
    assert s.database_url.startswith("postgresql+psycopg://")
