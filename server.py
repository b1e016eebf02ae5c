"""Entry point. ``app`` is the WSGI app (``gunicorn server:app``, ``flask --app server …``: a production
start, which needs the settings of README "Deploying at scale"); ``python server.py`` runs the
embedded default (sandbox CRMs, generated secrets, a job worker)."""

from __future__ import annotations

if __name__ == "__main__":
    from sandbox.runner import start_sandboxes
    from widget.embedded import run

    raise SystemExit(run(start_sandboxes))

from widget.startup import production_app

app = production_app()
