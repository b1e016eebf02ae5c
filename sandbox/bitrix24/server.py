"""Serving the sandbox on several loopback addresses at once.

A renamed portal moves to another loopback name on the same port (``127.0.0.2:<port>``), so the
server starts listening there when the rename happens.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

log = logging.getLogger(__name__)


class SandboxServer:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._servers: dict[tuple[str, int], BaseWSGIServer] = {}
        self._lock = threading.Lock()
        self.port = 0

    def listen(self, host: str, port: int | None = None) -> int:
        """Serve on ``host:port`` (default: the first listener's port; 0 picks a free one)."""
        if not host.startswith("127.") and host not in ("localhost", "::1"):
            raise ValueError("the sandbox only listens on loopback addresses")
        wanted = self.port if port is None else port
        with self._lock:
            if (host, wanted) in self._servers and wanted:
                return wanted
            server = make_server(host, wanted, self.app, threaded=True)
            bound = server.server_port
            self._servers[(host, bound)] = server
            if not self.port:
                self.port = bound
        thread = threading.Thread(target=server.serve_forever, name=f"b24-sandbox-{host}:{bound}", daemon=True)
        thread.start()
        log.info("sandbox Bitrix24 listening on %s:%s", host, bound)
        return bound

    def stop(self) -> None:
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            server.shutdown()
            server.server_close()
