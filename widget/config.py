"""One typed settings object, read from the environment once and validated at start.

Two shapes of deployment share these names:

* the *embedded default* (``SANDBOX=1``): one SQLite file in the instance folder, the built-in
  sandbox CRMs on loopback, generated secrets kept in the instance folder. Only ``python server.py``
  (and so ``./run.sh``) chooses it by itself; anything else (tests, benchmarks) sets it explicitly;
* a real deployment (``SANDBOX`` unset or ``0``: the default of ``gunicorn server:app``,
  ``flask --app server …`` and ``python -m widget.jobs.worker``): every secret, address and CRM
  credential comes from the environment, and a start without them stops with one message naming
  every one that is missing. A production start must never fall back on the sandbox's public
  credentials or on secrets generated into a local folder.

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

# The checkout: templates, static files, migrations and app assets are found from here. Here rather
# than in ``widget/__init__`` so that a module reading a file beside the code (a CRM adapter's app
# card) need not import the app factory.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ConfigError(ValueError):
    """A variable is missing or malformed; the message names it."""


# Credentials the embedded sandboxes are started with. They only ever talk to loopback stand-ins.
SANDBOX_KOMMO_CLIENT_ID = "6f2b1c3e-0d4a-4e8b-9a57-5a1c0de0a001"
SANDBOX_KOMMO_CLIENT_SECRET = "sandbox-kommo-secret-not-for-production-0001"
SANDBOX_BITRIX24_CLIENT_ID = "local.sandbox0000000001.00000001"
SANDBOX_BITRIX24_CLIENT_SECRET = "sandbox-bitrix24-secret-not-for-production-01"

DEFAULT_KOMMO_DOMAINS = ("kommo.com", "amocrm.ru", "amocrm.com")

# What a production start cannot do without, and how to get it: the stop message names each.
_SECRET_HOWTO = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
_FERNET_HOWTO = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
PRODUCTION_REQUIRED = (
    ("SECRET_KEY", f"signs sessions, page and CSRF tokens; make one with: {_SECRET_HOWTO}"),
    ("TOKEN_ENCRYPTION_KEY", f"the Fernet key that encrypts CRM tokens at rest; make one with: {_FERNET_HOWTO}"),
    ("PUBLIC_URL", "our https:// address as the CRMs and browsers reach it (OAuth redirect URI, widget origin)"),
    ("DATABASE_URL", "postgresql://user:password@host/database (or sqlite:////path/widget.db on one machine)"),
    ("GATEWAY_URL", "the messaging gateway that delivers replies to clients"),
)
CRM_PAIRS = (("KOMMO_CLIENT_ID", "KOMMO_CLIENT_SECRET"), ("BITRIX24_CLIENT_ID", "BITRIX24_CLIENT_SECRET"))


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
    # How many reverse proxies (a TLS front, a load balancer) stand before the WSGI server and append
    # X-Forwarded-For/-Proto/-Host/-Port: only that many hops of those headers are believed.
    proxy_hops: int = 0

    # SQLAlchemy's pool per process: at most db_pool_size + db_max_overflow connections (the gateway
    # intake keeps one more per web thread on PostgreSQL; README "Deploying at scale" sizes both).
    db_pool_size: int = 10
    db_max_overflow: int = 20
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


def _missing_for_production(env: Mapping[str, str]) -> list[str]:
    """Every setting a production start lacks, one line each (name: what it is, how to get it)."""
    missing = [f"{name}: {why}" for name, why in PRODUCTION_REQUIRED if _given(env, name) is None]
    given_pairs = [pair for pair in CRM_PAIRS if any(_given(env, name) for name in pair)]
    if not given_pairs:
        missing.append(
            "KOMMO_CLIENT_ID and KOMMO_CLIENT_SECRET, or BITRIX24_CLIENT_ID and BITRIX24_CLIENT_SECRET "
            "(or all four): the keys of your integration in each CRM you serve"
        )
    for id_name, secret_name in given_pairs:
        if _given(env, id_name) is None:
            missing.append(f"{id_name}: set together with {secret_name}")
        if _given(env, secret_name) is None:
            missing.append(f"{secret_name}: set together with {id_name}")
    return missing


def _production_problem(missing: list[str]) -> str:
    lines = "\n".join(f"  - {line}" for line in missing)
    return (
        f"A production start (SANDBOX is not 1) is missing {len(missing)} setting(s):\n{lines}\n"
        'See "Deploying at scale" in README.md. To try the server without any of these, run '
        "`python server.py` (the embedded default: sandbox CRMs, generated secrets)."
    )


def _loopback(host: str | None) -> bool:
    return host in {"localhost", "127.0.0.1", "::1"} or bool(host and host.startswith("127."))


def _read(env: dict[str, str]) -> Settings:
    # Production unless chosen otherwise: only ``python server.py`` picks the sandbox by itself.
    sandbox = _bool(env, "SANDBOX", False)
    if not sandbox:
        missing = _missing_for_production(env)
        if missing:
            raise ConfigError(_production_problem(missing))
    instance_path = os.path.abspath(env.get("INSTANCE_PATH") or os.path.join(os.getcwd(), "instance"))
    host = env.get("HOST") or "127.0.0.1"
    port = _int(env, "PORT", 5000, 1, 65535)
    public_url = _url("PUBLIC_URL", env.get("PUBLIC_URL") or f"http://{host}:{port}")
    if not sandbox and not public_url.startswith("https:") and not _loopback(urlsplit(public_url).hostname):
        # Both CRMs frame only https pages and call only https hooks; plain http is for loopback trials.
        raise ConfigError(f"PUBLIC_URL must be an https:// address outside loopback, not {public_url!r}")

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

    # Generated into the instance folder only on the embedded default: production has them (above).
    secret_key = env.get("SECRET_KEY") or _instance_secret(Path(instance_path) / "secret_key", "token")
    if len(secret_key) < 16:
        raise ConfigError("SECRET_KEY must be at least 16 characters long")

    raw_keys = env.get("TOKEN_ENCRYPTION_KEY") or _instance_secret(Path(instance_path) / "token_key", "fernet")
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
        proxy_hops=_int(env, "PROXY_HOPS", 0, 0, 5),
        db_pool_size=_int(env, "DB_POOL_SIZE", 10, 1, 1000),
        db_max_overflow=_int(env, "DB_MAX_OVERFLOW", 20, 0, 1000),
        max_channels=_int(env, "MAX_CHANNELS", 100, 1, 100_000),
    )
