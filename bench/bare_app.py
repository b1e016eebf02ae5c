"""The baseline of the inbound benchmark: a bare Flask app whose ``POST /gateway/messages`` reads
the body and answers 200, served by the same gunicorn settings as ours. The ratio of our figures
to these is what our gateway costs on top of Flask and gunicorn themselves."""

from __future__ import annotations

from flask import Flask, request

app = Flask(__name__)


@app.post("/gateway/messages")
def receive() -> tuple[str, int]:
    request.get_data(cache=False)
    return '{"status":"stored"}', 200
