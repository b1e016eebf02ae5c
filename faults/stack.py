"""Our whole deployment on loopback, one OS process per part, as production runs it.

* the sandbox Kommo and the sandbox Bitrix24 (``faults.sandbox``), each its own process, so they
  keep their state while we kill and restart our side;
* ``gunicorn server:app`` (N workers, gthread) on PostgreSQL;
* ``M`` job workers on a Redis queue (``faults.worker``, the production worker unless time is
  compressed), each on its own Redis database index claimed for this run;
* optionally the sandbox messaging gateway (``GATEWAY_URL``), a process of its own too.

Everything is addressed by its loopback port unless ``StackConfig.public`` names the ``https://``
addresses a TLS front gives each part (``tests/support/production.py``): then our ``PUBLIC_URL``,
``KOMMO_BASE_URL``, ``BITRIX24_OAUTH_URL`` and ``GATEWAY_URL`` and the sandboxes' idea of themselves
use those names, while this module still checks each process's health on its loopback port.

The benchmarks use it too (gateway, end to end, memory). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS_HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


# --- PostgreSQL -----------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    """``postgresql+psycopg://…`` (SQLAlchemy) → ``postgresql://…`` (libpq)."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def recreate_database(url: str) -> None:
    """Drop and create the database ``url`` names (connecting to the server's ``postgres`` db)."""
    import psycopg

    name = database_name(url)
    with psycopg.connect(_libpq(with_database(url, "postgres")), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    name = database_name(url)
    with psycopg.connect(_libpq(with_database(url, "postgres")), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def terminate_connections(url: str) -> int:
    """Drop every connection to this database except our own, once (a failover, a pgbouncer restart)."""
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


# --- Redis ----------------------------------------------------------------------------------------

REDIS_CLAIM_KEY = "widget-faults:claimed-by"


def claim_redis_db(first: int = 8, last: int = 15) -> int:
    """An empty Redis database index nobody else claimed, so runs do not share a queue."""
    import redis

    for index in range(first, last + 1):
        r = redis.Redis(host=REDIS_HOST, db=index)
        if r.set(REDIS_CLAIM_KEY, str(os.getpid()), nx=True, ex=3 * 3600):
            keys = [k for k in r.keys("*") if k != REDIS_CLAIM_KEY.encode()]
            if keys:
                r.delete(*keys)  # a previous run of ours died before releasing it
            return index
        owner = r.get(REDIS_CLAIM_KEY)
        if owner is not None and not Path(f"/proc/{int(owner)}").exists():
            r.delete(REDIS_CLAIM_KEY)  # the claimer is gone; take it over
            if r.set(REDIS_CLAIM_KEY, str(os.getpid()), nx=True, ex=3 * 3600):
                r.flushdb()
                r.set(REDIS_CLAIM_KEY, str(os.getpid()), ex=3 * 3600)
                return index
    raise RuntimeError(f"no free Redis database between {first} and {last}")


def release_redis_db(index: int) -> None:
    import redis

    redis.Redis(host=REDIS_HOST, db=index).flushdb()


# --- processes ------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")  # the child keeps its own descriptor
        self.popen = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        if self.popen is None or not self.alive:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye (what the OOM killer or a lost machine does)."""
        if self.popen is not None and self.alive:
            self.popen.kill()
            self.popen.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def peak_rss_mb(pid: int) -> float | None:
    """The process's high-water mark of resident memory (``VmHWM``), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --- the stack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicNames:
    """Where others reach each part, e.g. ``https://widget.app.test:8443`` (origins, no path)."""

    ours: str
    kommo: str
    bitrix24: str
    gateway: str


@dataclass
class StackConfig:
    database_url: str
    web_workers: int = 2
    web_threads: int = 8
    job_workers: int = 2
    job_threads: int = 4
    kommo: bool = True
    bitrix24: bool = True
    # The sandboxes' own limits (the CRMs' contracts): Kommo 7 rps per account, Bitrix24 2/s + 50.
    kommo_rate: float = 7.0
    bitrix24_rate: float = 2.0
    bitrix24_burst: float = 50
    http_timeout: float = 10.0
    lease: float | None = None  # compressed claim lease (faults.worker)
    sweep: float | None = None  # extra outbox sweep interval (faults.worker)
    env: dict[str, str] = field(default_factory=dict)  # more settings for our processes
    app_module: str = "server:app"
    worker_module: str = "faults.worker"  # or "widget.jobs.worker", the production entry point itself
    gateway: bool = False  # start the sandbox messaging gateway and send replies to it
    public: PublicNames | None = None


class Stack:
    def __init__(self, config: StackConfig, run_dir: str | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="widget-stack-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.web_port = free_port()
        self.kommo_port = free_port() if config.kommo else 0
        self.bitrix24_port = free_port() if config.bitrix24 else 0
        self.gateway_port = free_port() if config.gateway else 0
        self.redis_db: int | None = None
        self.sandboxes: dict[str, Proc] = {}
        self.web: Proc | None = None
        self.workers: list[Proc] = []
        self._app: Any = None

    # --- addresses and environment ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def kommo_url(self) -> str:
        return f"http://127.0.0.1:{self.kommo_port}"

    @property
    def bitrix24_url(self) -> str:
        return f"http://localhost:{self.bitrix24_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def public_url(self) -> str:
        """Our ``PUBLIC_URL``: what the CRMs and the browser call us by."""
        return self.config.public.ours if self.config.public else self.url

    def _public(self, part: str, loopback: str) -> str:
        return str(getattr(self.config.public, part)) if self.config.public else loopback

    @property
    def redis_url(self) -> str:
        return f"redis://{REDIS_HOST}:6379/{self.redis_db}"

    def env(self) -> dict[str, str]:
        from widget.config import Settings

        key_file = self.run_dir / "token_key"
        if not key_file.exists():
            from cryptography.fernet import Fernet

            key_file.write_text(Fernet.generate_key().decode())
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
            "SANDBOX": "1",
            "INSTANCE_PATH": str(self.run_dir / "instance"),
            "DATABASE_URL": self.config.database_url,
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": "fault-suite-secret-key-0123456789",
            "TOKEN_ENCRYPTION_KEY": key_file.read_text().strip(),
            "PUBLIC_URL": self.public_url,
            "HTTP_TIMEOUT": str(self.config.http_timeout),
            "GATEWAY_URL": "http://127.0.0.1:9/gateway",  # replies are not part of these runs
        }
        if self.config.gateway:
            env["GATEWAY_URL"] = self._public("gateway", self.gateway_url) + "/api/v1/messages"
        if self.config.kommo:
            env.update(
                KOMMO_BASE_URL=self._public("kommo", self.kommo_url) + "/{host}",
                KOMMO_DOMAINS="kommo.test",
                SANDBOX_KOMMO_PORT=str(self.kommo_port),
            )
        if self.config.bitrix24:
            env.update(
                BITRIX24_OAUTH_URL=self._public("bitrix24", self.bitrix24_url) + "/oauth-server",
                SANDBOX_BITRIX24_PORT=str(self.bitrix24_port),
            )
        env.update(self.config.env)
        Settings.from_env(env)  # fail here, with the variable's name, rather than in a child
        return env

    def settings(self) -> Any:
        from widget.config import Settings

        return Settings.from_env(self.env())

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Stack:
        """Start every process at once, then wait for each (their imports overlap)."""
        from widget.migrate import upgrade

        try:
            self.redis_db = claim_redis_db()
            env = self.env()
            upgrade(self.settings().database_url)
            if self.config.kommo:
                self._start_sandbox("kommo", self.kommo_port, ["--rate", str(self.config.kommo_rate)])
            if self.config.bitrix24:
                self._start_sandbox(
                    "bitrix24",
                    self.bitrix24_port,
                    ["--rate", str(self.config.bitrix24_rate), "--burst", str(self.config.bitrix24_burst)],
                )
            if self.config.gateway:
                self._start_sandbox("gateway", self.gateway_port, [])
            self.web = self.gunicorn(self.config.app_module, self.web_port, env, name="web")
            for i in range(self.config.job_workers):
                self.workers.append(self._worker(i, env))
            if self.config.kommo:
                wait_for(lambda: requests.get(f"{self.kommo_url}/_sandbox/state", timeout=2).ok, 30, "sandbox Kommo")
            if self.config.bitrix24:
                wait_for(lambda: requests.get(f"{self.bitrix24_url}/_sandbox/state", timeout=2).ok, 30, "sandbox B24")
            if self.config.gateway:
                wait_for(lambda: requests.get(f"{self.gateway_url}/_sandbox/state", timeout=2).ok, 30, "gateway")
            wait_for(lambda: requests.get(f"{self.url}/healthz", timeout=2).status_code == 200, 60, "gunicorn")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_sandbox(self, crm: str, port: int, extra: list[str]) -> None:
        if self.config.public is not None:
            extra = [*extra, "--public-url", getattr(self.config.public, crm)]
        proc = Proc(
            f"sandbox-{crm}",
            [sys.executable, "-m", "faults.sandbox", crm, "--port", str(port), "--our-url", self.public_url, *extra],
            {**self.env(), "PYTHONUNBUFFERED": "1"},
            self.run_dir / f"sandbox-{crm}.log",
        ).start()
        self.sandboxes[crm] = proc

    def gunicorn(self, module: str, port: int, env: dict[str, str], *, name: str) -> Proc:
        argv = [
            str(BIN / "gunicorn"),
            "--workers",
            str(self.config.web_workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(self.config.web_threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--keep-alive",
            "30",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
            module,
        ]
        return Proc(name, argv, env, self.run_dir / f"{name}.log").start()

    def _worker(self, i: int, env: dict[str, str]) -> Proc:
        argv = [sys.executable, "-m", self.config.worker_module, str(self.config.job_threads)]
        if self.config.lease:
            argv += ["--lease", str(self.config.lease)]
        if self.config.sweep:
            argv += ["--sweep", str(self.config.sweep)]
        return Proc(f"worker-{i}", argv, env, self.run_dir / f"worker-{i}.log").start()

    def kill_worker(self, i: int) -> None:
        self.workers[i].kill()

    def restart_worker(self, i: int) -> None:
        self.workers[i].kill()
        self.workers[i] = self._worker(i, self.env())

    def web_worker_pids(self) -> list[int]:
        return children(self.web.pid) if self.web is not None else []

    def stop(self) -> None:
        procs = [*self.workers, *([self.web] if self.web else []), *self.sandboxes.values()]
        for proc in procs:  # all at once: each takes its own seconds to shut down gracefully
            proc.signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.stop()
            except Exception:  # keep stopping the others
                proc.kill()
        if self._app is not None:
            from widget.db import db

            db.engine.dispose()
        if self.redis_db is not None:
            release_redis_db(self.redis_db)
            self.redis_db = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- our app in this (the driving) process ----------------------------------------------------

    def app(self) -> Any:
        """Our Flask app in the driving process: the same database, keys and Redis queue as the
        stack, for setting up tenants and reading what was stored."""
        if self._app is None:
            from widget import create_app

            settings = self.settings()
            self._app = create_app(settings)
        return self._app

    def diagnostics(self) -> str:
        parts = []
        for proc in [*self.sandboxes.values(), *([self.web] if self.web else []), *self.workers]:
            state = "alive" if proc.alive else f"exited {proc.popen.returncode if proc.popen else '?'}"
            parts.append(f"--- {proc.name} ({state}) {proc.log_path}\n{proc.log_tail(15)}")
        return "\n".join(parts)
