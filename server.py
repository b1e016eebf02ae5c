"""Entry point. ``app`` is the WSGI app; ``python server.py`` runs the embedded default."""

from __future__ import annotations

from widget import create_app
from widget.embedded import main

app = create_app()

if __name__ == "__main__":
    raise SystemExit(main(app))
