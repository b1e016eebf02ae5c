"""One typed settings object, read from the environment once and validated at start.

Two shapes of deployment share these names:

* the *embedded default* (``SANDBOX=1``, the default): one SQLite file in the instance folder, the
  built-in sandbox CRMs on loopback, generated secrets kept in the instance folder;
* a real deployment (``SANDBOX=0``): every secret and CRM credential comes from the environment.

Whatever the environment sets always wins over the embedded default.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from cryptography.fernet import Fernet


class ConfigError(ValueError):
    """A variable is missing or malformed; the message names it."""


# Credentials the embedded sandboxes are started with. They only ever talk to loopback stand-ins.
SANDBOX_KOMMO_CLIENT_ID = "6f2b1c3e-0d4a-4e8b-9a57-5a1c0de0a001"
SANDBOX_KOMMO_CLIENT_SECRET = "sandbox-kommo-secret-not-for-production-0001"
SANDBOX_BITRIX24_CLIENT_ID = "local.sandbox0000000001.00000001"
SANDBOX_BITRIX24_CLIENT_SECRET = "sandbox-bitrix24-secret-not-for-production-01"

DEFAULT_KOMMO_DOMAINS = ("kommo.com", "amocrm.ru", "amocrm.com")


@dataclass(frozen=True)
class Settings:
    sandbox: bool
    host: str
    port: int
    public_url: str
    database_url: str
    redis_url: str | None
    secret_key: str
    token_keys: tuple[str, ...]
    instance_path: str
    kommo_client_id: str | None
    kommo_client_secret: str | None
    kommo_domains: tuple[str, ...]
    kommo_base_url: str
    kommo_rate_per_second: float
    bitrix24_client_id: str | None
    bitrix24_client_secret: str | None
    bitrix24_oauth_url: str
    bitrix24_rate_per_second: float
    bitrix24_burst: int
    http_timeout: float
    uninstall_grace_days: int
    sandbox_kommo_port: int
    sandbox_bitrix24_port: int
    extra: Mapping[str, str] = field(default_factory=dict)
    # Where replies to clients are POSTed (signed JSON). Unset on the embedded default: the sandbox
    # messaging gateway on ``sandbox_gateway_port`` takes them.
    gateway_url: str | None = None
    sandbox_gateway_port: int = 5003
    # Channels one account may have (enabled or not); past it adding one is refused.
    max_channels: int = 100

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def kommo_enabled(self) -> bool:
        return bool(self.kommo_client_id and self.kommo_client_secret)

    @property
    def bitrix24_enabled(self) -> bool:
        return bool(self.bitrix24_client_id and self.bitrix24_client_secret)

    @property
    def sandbox_kommo_url(self) -> str:
        return f"http://localhost:{self.sandbox_kommo_port}"

    @property
    def sandbox_bitrix24_url(self) -> str:
        return f"http://localhost:{self.sandbox_bitrix24_port}"

    @property
    def sandbox_gateway_url(self) -> str:
        return f"http://localhost:{self.sandbox_gateway_port}"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        return _read(env)


def _given(env: Mapping[str, str], name: str) -> str | None:
    """The variable's text; unset and empty both mean "use the default"."""
    raw = env.get(name)
    return None if raw is None or raw == "" else raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _given(env, name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be 1/0, true/false, yes/no or on/off, not {raw!r}")


_Number = TypeVar("_Number", int, float)


def _number(
    env: Mapping[str, str],
    name: str,
    default: _Number,
    lo: _Number,
    hi: _Number,
    parse: Callable[[str], _Number],
    what: str,
) -> _Number:
    raw = _given(env, name)
    if raw is None:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, not {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    return _number(env, name, default, lo, hi, int, "a whole number")


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    return _number(env, name, default, lo, hi, float, "a number")


def _url(name: str, raw: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{name} must be an absolute {'/'.join(schemes)} URL, not {raw!r}")
    return raw.rstrip("/")


def _instance_secret(path: Path, make: str) -> str:
    """Read a generated secret kept in the instance folder, creating it once."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = Fernet.generate_key().decode() if make == "fernet" else secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must end up with the same key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def _read(env: dict[str, str]) -> Settings:
    sandbox = _bool(env, "SANDBOX", True)
    instance_path = os.path.abspath(env.get("INSTANCE_PATH") or os.path.join(os.getcwd(), "instance"))
    host = env.get("HOST") or "127.0.0.1"
    port = _int(env, "PORT", 5000, 1, 65535)
    public_url = _url("PUBLIC_URL", env.get("PUBLIC_URL") or f"http://{host}:{port}")

    database_url = env.get("DATABASE_URL") or f"sqlite:///{os.path.join(instance_path, 'widget.db')}"
    if not database_url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        raise ConfigError(f"DATABASE_URL must be a sqlite:// or postgresql:// URL, not {database_url!r}")
    if database_url.startswith("postgres:"):
        database_url = "postgresql+psycopg:" + database_url[len("postgres:") :]
    elif database_url.startswith("postgresql:"):
        database_url = "postgresql+psycopg:" + database_url[len("postgresql:") :]

    redis_url = env.get("REDIS_URL") or None
    if redis_url is not None:
        _url("REDIS_URL", redis_url, ("redis", "rediss", "unix"))

    def required(name: str, sandbox_value: str | None) -> str | None:
        value = env.get(name) or None
        if value is None and sandbox:
            return sandbox_value
        return value

    secret_key = env.get("SECRET_KEY") or None
    if secret_key is None:
        if not sandbox:
            raise ConfigError("SECRET_KEY is required when SANDBOX=0")
        secret_key = _instance_secret(Path(instance_path) / "secret_key", "token")
    if len(secret_key) < 16:
        raise ConfigError("SECRET_KEY must be at least 16 characters long")

    raw_keys = env.get("TOKEN_ENCRYPTION_KEY") or None
    if raw_keys is None:
        if not sandbox:
            raise ConfigError("TOKEN_ENCRYPTION_KEY is required when SANDBOX=0 (a Fernet key)")
        raw_keys = _instance_secret(Path(instance_path) / "token_key", "fernet")
    token_keys = tuple(k.strip() for k in raw_keys.split(",") if k.strip())
    for k in token_keys:
        try:
            Fernet(k.encode())
        except (ValueError, TypeError):
            raise ConfigError(
                "TOKEN_ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
                "(32 url-safe base64-encoded bytes)"
            ) from None

    kommo_port = _int(env, "SANDBOX_KOMMO_PORT", 5001, 1, 65535)
    bitrix_port = _int(env, "SANDBOX_BITRIX24_PORT", 5002, 1, 65535)
    gateway_port = _int(env, "SANDBOX_GATEWAY_PORT", 5003, 1, 65535)
    gateway_url = _url("GATEWAY_URL", env["GATEWAY_URL"]) if env.get("GATEWAY_URL") else None

    kommo_client_id = required("KOMMO_CLIENT_ID", SANDBOX_KOMMO_CLIENT_ID)
    kommo_client_secret = required("KOMMO_CLIENT_SECRET", SANDBOX_KOMMO_CLIENT_SECRET)
    if bool(kommo_client_id) != bool(kommo_client_secret):
        raise ConfigError("KOMMO_CLIENT_ID and KOMMO_CLIENT_SECRET must be set together")

    domains: tuple[str, ...]
    domains_raw = env.get("KOMMO_DOMAINS") or None
    if domains_raw is None:
        domains = ("kommo.test",) if sandbox else DEFAULT_KOMMO_DOMAINS
    else:
        domains = tuple(d.strip().lower().lstrip(".") for d in domains_raw.split(",") if d.strip())
        if not domains or any("/" in d or ":" in d or "." not in d for d in domains):
            raise ConfigError(f"KOMMO_DOMAINS must be comma-separated domain names, not {domains_raw!r}")

    kommo_base_url = env.get("KOMMO_BASE_URL") or (
        f"http://localhost:{kommo_port}/{{host}}" if sandbox else "https://{host}"
    )
    if "{host}" not in kommo_base_url:
        raise ConfigError("KOMMO_BASE_URL must contain the placeholder {host}")
    _url("KOMMO_BASE_URL", kommo_base_url.replace("{host}", "example.kommo.com"))

    bitrix_client_id = required("BITRIX24_CLIENT_ID", SANDBOX_BITRIX24_CLIENT_ID)
    bitrix_client_secret = required("BITRIX24_CLIENT_SECRET", SANDBOX_BITRIX24_CLIENT_SECRET)
    if bool(bitrix_client_id) != bool(bitrix_client_secret):
        raise ConfigError("BITRIX24_CLIENT_ID and BITRIX24_CLIENT_SECRET must be set together")
    bitrix_oauth_url = _url(
        "BITRIX24_OAUTH_URL",
        env.get("BITRIX24_OAUTH_URL")
        or (f"http://localhost:{bitrix_port}/oauth-server" if sandbox else "https://oauth.bitrix.info"),
    )

    if not sandbox and not (kommo_client_id or bitrix_client_id):
        raise ConfigError(
            "Set KOMMO_CLIENT_ID/KOMMO_CLIENT_SECRET or BITRIX24_CLIENT_ID/BITRIX24_CLIENT_SECRET "
            "(or run the embedded default with SANDBOX=1)"
        )

    return Settings(
        sandbox=sandbox,
        host=host,
        port=port,
        public_url=public_url,
        database_url=database_url,
        redis_url=redis_url,
        secret_key=secret_key,
        token_keys=token_keys,
        instance_path=instance_path,
        kommo_client_id=kommo_client_id,
        kommo_client_secret=kommo_client_secret,
        kommo_domains=domains,
        kommo_base_url=kommo_base_url,
        kommo_rate_per_second=_float(env, "KOMMO_RATE_PER_SECOND", 7.0, 0.1, 1000.0),
        bitrix24_client_id=bitrix_client_id,
        bitrix24_client_secret=bitrix_client_secret,
        bitrix24_oauth_url=bitrix_oauth_url,
        bitrix24_rate_per_second=_float(env, "BITRIX24_RATE_PER_SECOND", 2.0, 0.1, 1000.0),
        bitrix24_burst=_int(env, "BITRIX24_BURST", 50, 1, 10000),
        http_timeout=_float(env, "HTTP_TIMEOUT", 10.0, 0.1, 120.0),
        uninstall_grace_days=_int(env, "UNINSTALL_GRACE_DAYS", 30, 0, 3650),
        sandbox_kommo_port=kommo_port,
        sandbox_bitrix24_port=bitrix_port,
        gateway_url=gateway_url,
        sandbox_gateway_port=gateway_port,
        max_channels=_int(env, "MAX_CHANNELS", 100, 1, 100_000),
    )
