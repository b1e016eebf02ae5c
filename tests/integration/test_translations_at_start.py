"""A plain checkout (no compiled ``.mo`` catalogs, as git leaves it) started the documented ways
serves Spanish, Portuguese and Russian users in their language."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from tests.support.processes import BIN, ROOT, clean_env, free_port, run_to_end, started

pytestmark = pytest.mark.slow

# What git would not give a fresh clone: build output, local state, caches.
NOT_IN_A_CHECKOUT = shutil.ignore_patterns(
    ".git", ".venv", "instance", "__pycache__", "*.mo", "*.db", "test-output", "dist", ".*_cache", "node_modules"
)
SPANISH = "Algo no ha ido bien"  # the error page's heading, es
LANGUAGES = {"es": SPANISH, "pt": "Algo deu errado", "ru": "Что-то пошло не так"}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("checkout") / "app"
    shutil.copytree(ROOT, copy, ignore=NOT_IN_A_CHECKOUT, symlinks=True)
    return copy


def _no_catalogs(checkout: Path) -> None:
    for mo in (checkout / "widget" / "translations").rglob("*.mo"):
        mo.unlink()
    assert list((checkout / "widget" / "translations").glob("*/LC_MESSAGES/messages.po"))


def _speaks_every_language(url: str) -> None:
    for lang, heading in LANGUAGES.items():
        page = requests.get(f"{url}/no-such-page?lang={lang}", timeout=10)
        assert page.status_code == 404
        assert f'<html lang="{lang}">' in page.text and heading in page.text, page.text
    root = requests.get(url + "/", headers={"Accept-Language": "es-ES,es;q=0.9,en;q=0.5"}, timeout=10)
    assert "Chats de Wazzup para Kommo y Bitrix24" in root.text


def test_python_server_py_on_a_plain_checkout_speaks_spanish(checkout: Path, tmp_path: Path):
    _no_catalogs(checkout)
    port = free_port()
    env = clean_env(
        INSTANCE_PATH=tmp_path / "instance",
        PORT=port,
        SANDBOX_KOMMO_PORT=free_port(),
        SANDBOX_BITRIX24_PORT=free_port(),
        SANDBOX_GATEWAY_PORT=free_port(),
    )
    with started([sys.executable, "server.py"], env, tmp_path / "server.log", cwd=checkout) as server:
        server.wait_http(f"http://127.0.0.1:{port}/healthz")
        _speaks_every_language(f"http://127.0.0.1:{port}")
    assert (checkout / "widget" / "translations" / "es" / "LC_MESSAGES" / "messages.mo").exists()


def test_gunicorn_on_a_plain_checkout_speaks_spanish_in_every_worker(checkout: Path, tmp_path: Path):
    _no_catalogs(checkout)
    port = free_port()
    env = clean_env(
        INSTANCE_PATH=tmp_path / "instance",
        SECRET_KEY="production-secret-key-0123456789",
        TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        DATABASE_URL=f"sqlite:///{tmp_path / 'widget.db'}",
        GATEWAY_URL="http://127.0.0.1:9/messages",
        KOMMO_CLIENT_ID="real-client-id",
        KOMMO_CLIENT_SECRET="real-client-secret",
    )
    code, output = run_to_end([str(BIN / "flask"), "--app", "server", "db-upgrade"], env, cwd=checkout)
    assert code == 0, output
    _no_catalogs(checkout)  # the workers below start together on a checkout without catalogs
    argv = [str(BIN / "gunicorn"), "-w", "4", "--worker-class", "gthread", "--threads", "2"]
    with started([*argv, "-b", f"127.0.0.1:{port}", "server:app"], env, tmp_path / "web.log", cwd=checkout) as web:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        for _ in range(6):  # connections spread over the workers
            _speaks_every_language(f"http://127.0.0.1:{port}")
    leftovers = [p.name for p in (checkout / "widget" / "translations").rglob("*.tmp")]
    assert leftovers == []
