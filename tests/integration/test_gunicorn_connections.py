"""What a client sees on the wire from real gunicorn (the README's gthread worker) after a 413.

gunicorn keeps connections alive. A body over the limit used to get ``413`` with ``Connection:
keep-alive`` while gunicorn, unable to drain more than 64 KiB of the unread rest, then closed the
connection: a client that reused it — a gateway with a connection pool — had its next request
lost. Now every 413 says ``Connection: close`` and the connection really ends, so the next request
goes on a new connection. Raw sockets, because an HTTP library would hide exactly this.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from faults.stack import BIN, Proc, free_port, wait_for
from tests.conftest import base_env

LIMIT = 1024 * 1024
BIG = 2 * LIMIT
HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``gunicorn --worker-class gthread server:app`` on the embedded default's SQLite file."""
    folder = tmp_path_factory.mktemp("gunicorn")
    env = base_env(folder, f"sqlite:///{folder / 'widget.db'}")
    env.update(PATH="/usr/bin:/bin", PYTHONPATH=str(Path(__file__).resolve().parents[2]), HOME=str(folder))
    from widget.config import Settings
    from widget.migrate import upgrade

    upgrade(Settings.from_env(env).database_url)
    port = free_port()
    argv = [str(BIN / "gunicorn"), "--workers", "1", "--worker-class", "gthread", "--threads", "4"]
    argv += ["--bind", f"{HOST}:{port}", "--keep-alive", "30", "--log-level", "warning", "server:app"]
    proc = Proc("gunicorn", argv, env, folder / "gunicorn.log").start()
    try:
        wait_for(lambda: requests.get(f"http://{HOST}:{port}/healthz", timeout=2).status_code == 200, 60, "gunicorn")
        yield port
    finally:
        proc.stop()
        if proc.popen is not None and proc.popen.returncode not in (0, -15):
            print(proc.log_tail(), file=sys.stderr)


class Wire:
    """One client connection, read and written by hand."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send_request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """Headers, then the body from another thread: a client sends all of it whatever the server
        does meanwhile (and may find the connection reset for its trouble)."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
        fields = dict(headers or {})
        if "Transfer-Encoding" not in fields and (body or method == "POST"):
            fields["Content-Length"] = str(len(body))
        lines += [f"{k}: {v}" for k, v in fields.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        if body:
            threading.Thread(target=self._send_quietly, args=(body,), daemon=True).start()

    def _send_quietly(self, body: bytes) -> None:
        try:
            self.sock.sendall(body)
        except OSError:
            pass

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def read_response(self) -> tuple[int, dict[str, str], bytes]:
        """One response (Content-Length or chunked), or ``EOFError`` if the connection ended."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise EOFError("the connection was closed")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if "content-length" in headers:
            size = int(headers["content-length"])
            while len(self.buffer) < size:
                if not self._fill():
                    raise EOFError("the connection was closed mid-body")
            body, self.buffer = self.buffer[:size], self.buffer[size:]
        else:  # chunked
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    if not self._fill():
                        raise EOFError("the connection was closed mid-body")
                size_line, self.buffer = self.buffer.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buffer) < size + 2:
                    if not self._fill():
                        raise EOFError("the connection was closed mid-body")
                body += self.buffer[:size]
                self.buffer = self.buffer[size + 2 :]
                if size == 0:
                    break
        return status, headers, body

    def closed_by_server(self) -> bool:
        """The server ended the connection (FIN or reset) rather than leaving us waiting."""
        try:
            while self._fill():
                pass
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return True


@pytest.fixture
def wire(gunicorn: int) -> Iterator[Wire]:
    connection = Wire(gunicorn)
    yield connection
    connection.close()


def next_request_is_answered_or_refused_cleanly(port: int, wire: Wire) -> None:
    """What a pooled client does next on the same connection: it must get an answer, or find the
    connection closed at once — never wait for an answer that does not come."""
    try:
        wire.send_request("GET", "/healthz")
        status, _, _ = wire.read_response()
    except (EOFError, ConnectionResetError, BrokenPipeError):
        return  # closed: the client opens a new connection
    except TimeoutError:
        pytest.fail("the second request on the connection got no answer and no close")
    assert status == 200


def test_a_kept_alive_connection_serves_the_next_request(wire: Wire, gunicorn: int) -> None:
    """The control: within the limit, the connection is reused as it should be."""
    wire.send_request("POST", "/gateway/messages", b'{"not": "signed"}', {"Content-Type": "application/json"})
    status, headers, _ = wire.read_response()
    assert status == 401 and headers["connection"] == "keep-alive"
    wire.send_request("GET", "/healthz")
    status, _, _ = wire.read_response()
    assert status == 200


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/gateway/messages", "application/json"),  # the gateway's deliveries
        ("/app/channels", "application/x-www-form-urlencoded"),  # our settings forms
        ("/bitrix24/app", "application/x-www-form-urlencoded"),  # Bitrix24's iframe POST
    ],
)
def test_after_a_413_the_connection_is_closed_not_kept(wire: Wire, gunicorn: int, path: str, content_type: str) -> None:
    wire.send_request("POST", path, b"x" * BIG, {"Content-Type": content_type})
    status, headers, body = wire.read_response()
    assert status == 413, body[:200]
    assert headers["connection"] == "close"
    assert wire.closed_by_server(), "the server kept the connection open after saying close"
    next_request_is_answered_or_refused_cleanly(gunicorn, wire)


def test_a_chunked_body_that_grows_past_the_limit_closes_the_connection(wire: Wire, gunicorn: int) -> None:
    """No Content-Length to refuse up front: the limit is met while reading the form."""
    chunk = b"a=" + b"x" * 65534
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(24)) + b"0\r\n\r\n"
    wire.send_request(
        "POST",
        "/app/channels",
        chunks,
        {"Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"},
    )
    status, headers, body = wire.read_response()
    assert status == 413, body[:200]
    assert headers["connection"] == "close"
    next_request_is_answered_or_refused_cleanly(gunicorn, wire)


def test_a_gateway_with_a_connection_pool_loses_no_delivery_after_a_413(gunicorn: int) -> None:
    """What the issue describes, with the HTTP library a gateway would use: an oversized delivery,
    then a genuine one on the same pool; the second is answered."""
    url = f"http://{HOST}:{gunicorn}/gateway/messages"
    with requests.Session() as pool:
        try:
            first = pool.post(url, data=b"x" * BIG, headers={"Content-Type": "application/json"}, timeout=10)
            assert first.status_code == 413
        except requests.ConnectionError:
            pass  # the server may stop reading a body it refused; the answer is what matters next
        second = pool.post(url, data=b'{"not": "signed"}', headers={"Content-Type": "application/json"}, timeout=10)
        assert second.status_code == 401  # answered: refused for its signature, not lost
