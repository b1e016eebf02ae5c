"""HTTPS on loopback for the production-shape tests: a certificate, a TLS front, a CONNECT proxy.

Production puts a TLS front (nginx, a load balancer) before gunicorn, and the CRMs are on other
``https://`` sites. Here each of those sites is a name under ``.test`` that resolves to loopback:

* ``make_certificate(folder)`` — one self-signed certificate for ``*.app.test`` and ``*.crm.test``,
  made by the ``openssl`` command at test time. It is its own CA: processes that must verify it
  get it as ``REQUESTS_CA_BUNDLE``; Chromium is told to ignore certificate errors.
* ``TlsFront(backend_port)`` — a threaded HTTPS server on ``127.0.0.1`` that forwards every request
  to a plain-HTTP backend on loopback, as a TLS front does: the ``Host`` header unchanged, plus
  ``X-Forwarded-Proto: https``, ``X-Forwarded-Host`` and ``X-Forwarded-For``.
* ``ConnectProxy()`` — what our server's outbound calls to those names go through (``HTTPS_PROXY``):
  it answers ``CONNECT name.test:port`` by connecting to ``127.0.0.1:port`` and piping bytes, so
  TLS is end to end and the certificate is checked for the real name. Anything but ``*.test`` is
  refused, so nothing leaves the machine.

Chromium maps the names itself (``--host-resolver-rules=MAP *.test 127.0.0.1``): the port in an
``https://name.test:<port>`` address is the port the front listens on.
"""

from __future__ import annotations

import http.client
import select
import socket
import socketserver
import ssl
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

NAMES = ("*.app.test", "*.crm.test")
# Hop-by-hop headers (RFC 9110 §7.6.1) are the front's own business on each side.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def openssl_missing_reason() -> str | None:
    from shutil import which

    return None if which("openssl") else "the openssl command is not installed (apt-get install openssl)"


def make_certificate(folder: Path) -> Certificate:
    """A fresh self-signed certificate (RSA 2048, two days) for every name the tests use."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "test-ca.pem", folder / "test-ca.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=widget production-shape tests",
            "-addext",
            "subjectAltName=" + ",".join(f"DNS:{n}" for n in NAMES),
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class _Background:
    """A socketserver served from a daemon thread, stopped with ``stop()``."""

    server: _Server
    port: int

    def _serve(self, handler: type[socketserver.BaseRequestHandler], port: int) -> None:
        self.server = _Server(("127.0.0.1", port), handler)
        self.server.owner = self  # type: ignore[attr-defined]
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=type(self).__name__
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the TLS front --------------------------------------------------------------------------------------


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards the browser, as a real front does

    def setup(self) -> None:
        front: TlsFront = self.server.owner  # type: ignore[attr-defined]
        self.front = front
        try:
            # The handshake happens here, in the connection's own thread, not in the accept loop.
            self.request = front.context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):
            self.request.close()
            raise
        self.backend: http.client.HTTPConnection | None = None
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.backend is not None:
                self.backend.close()
            # The server closes the socket it accepted, which wrapping detached: close ours.
            self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        headers = [(k, v) for k, v in headers if not k.lower().startswith("x-forwarded-")]
        headers += [
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", self.headers.get("Host", "")),
            ("X-Forwarded-For", self.client_address[0]),
        ]
        for attempt in (1, 2):
            if self.backend is None:
                self.backend = http.client.HTTPConnection("127.0.0.1", self.front.backend_port, timeout=60)
            try:
                self.backend.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in headers:
                    self.backend.putheader(key, value)
                self.backend.endheaders(body)
                response = self.backend.getresponse()
                payload = response.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                # The backend closed a kept-alive connection between two requests: one new one.
                self.backend.close()
                self.backend = None
                if attempt == 2:
                    self.send_error(502, "the backend did not answer")
                    return
        self.send_response_only(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        if self.command != "HEAD" and response.status not in (204, 304):
            self.send_header("Content-Length", str(len(payload)))
        if response.will_close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if response.will_close and self.backend is not None:
            self.backend.close()
            self.backend = None

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _relay


class TlsFront(_Background):
    """``https://<any .test name>:<port>`` → ``http://127.0.0.1:<backend_port>``."""

    def __init__(self, certificate: Certificate, backend_port: int, port: int = 0) -> None:
        self.context = certificate.server_context()
        self.backend_port = backend_port
        self._serve(_FrontHandler, port)

    def origin(self, name: str) -> str:
        return f"https://{name}:{self.port}"


# --- the CONNECT proxy -----------------------------------------------------------------------------------


class _ConnectHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
            if len(head) > 65536:
                return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, _, target = line.partition(" ")
        target = target.rsplit(" ", 1)[0]
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or not host.endswith(".test") or not port.isdigit():
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with upstream:
            upstream.settimeout(None)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(client, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    peers = {a: b, b: a}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 120)
        if not readable:
            return
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            peers[sock].sendall(data)


class ConnectProxy(_Background):
    """``HTTPS_PROXY=http://127.0.0.1:<port>``: tunnels to ``*.test`` names only, all on loopback."""

    def __init__(self) -> None:
        self._serve(_ConnectHandler, 0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
