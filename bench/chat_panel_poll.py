"""The chat panel's poll: what one open panel costs the server every two seconds.

``GET /api/chats`` through the whole Flask stack (session token, the list page with its names,
channels and per-chat unanswered counts, the red/grey header counters), for a sales rep and a head,
at 100k chats (and 1M with ``--sizes``). Figures: the answer with a body (something changed) and
the 304 for an unchanged list (``If-None-Match``), plus the header counters alone. The data: 1,000
employees, 20 channels, 5 heads on all of them, one chat in ten unanswered (a head at 1M chats has
100k unanswered chats; the header counts up to 1,000 and then says "1000+").

    .venv/bin/python bench/chat_panel_poll.py [--sizes 100000,1000000] [--runs 200]

Uses its own PostgreSQL database (``BENCH_DATABASE_URL``, default ``chatpanel_bench``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # standalone: python bench/<this>.py

from bench.chat_list import HEADS, seed
from bench.common import bench_database, percentile, sqlalchemy_url

DEFAULT_DB = "postgresql://postgres@127.0.0.1/chatpanel_bench"
SIZES = (100_000,)
HEAD, REP = 1, HEADS + 1


def _app(url: str) -> Any:
    from cryptography.fernet import Fernet

    from widget import create_app

    app = create_app(
        {
            "SANDBOX": "1",
            "DATABASE_URL": url,
            "INSTANCE_PATH": "/tmp/chatpanel-bench",
            "SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }
    )
    app.config["TESTING"] = True
    return app


def _token(app: Any, employee: int) -> str:
    from widget.web.identity import Identity, issue_session_token

    ident = Identity(1, "kommo", str(employee), False, "en", "http://localhost:5001", f"Emp {employee}")
    with app.test_request_context():
        return issue_session_token(ident)


def _times(fn: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def measure(app: Any, runs: int) -> dict[str, Any]:
    from widget.db import db
    from widget.models import Employee
    from widget.services.conversations.chat_list.counters import totals

    client = app.test_client()
    out: dict[str, Any] = {}
    for who, employee in (("rep", REP), ("head", HEAD)):
        headers = {"X-Session-Token": _token(app, employee), "Accept": "application/json"}
        first = client.get("/api/chats", headers=headers)
        assert first.status_code == 200, first.get_data(as_text=True)[:300]
        etag = first.headers["ETag"]
        body = first.get_json()

        def full(headers: dict[str, str] = headers) -> None:
            assert client.get("/api/chats", headers=headers).status_code == 200

        def unchanged(headers: dict[str, str] = headers, etag: str = etag) -> None:
            assert client.get("/api/chats", headers={**headers, "If-None-Match": etag}).status_code == 304

        def counters(employee: int = employee) -> None:
            with db.session() as s:
                totals(s, 1, s.get(Employee, employee))

        for fn in (full, unchanged, counters):
            _times(fn, 20)  # warm up
        fig: dict[str, Any] = {"chats_on_page": len(body["chats"]), "totals": body["totals"]}
        for name, fn in (("poll_200", full), ("poll_304", unchanged), ("counters", counters)):
            t = _times(fn, runs)
            fig[f"{name}_p50_ms"] = statistics.median(t)
            fig[f"{name}_p95_ms"] = percentile(t, 95)
        out[who] = fig
    return out


def run(database_url: str | None, sizes: tuple[int, ...], runs: int) -> dict[str, Any]:
    from widget.db import db
    from widget.migrate import upgrade

    url = sqlalchemy_url(bench_database(database_url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DB))
    upgrade(url)
    app = _app(url)
    by_size: dict[str, Any] = {}
    try:
        for n in sizes:
            seed(n)
            by_size[str(n)] = measure(app, runs)
    finally:
        db.engine.dispose()
    return {"config": {"runs": runs, "poll_interval_s": 2}, "sizes": by_size}


def report(result: dict[str, Any]) -> str:
    lines = [
        "Chat panel poll (whole Flask stack, one process), milliseconds",
        f"{'GET /api/chats':<22}{'200 p50':>9}{'200 p95':>9}{'304 p50':>9}{'304 p95':>9}{'counters':>10}  red/grey",
    ]
    for n, fig in result["sizes"].items():
        for who in ("rep", "head"):
            f = fig[who]
            lines.append(
                f"{f'{int(n):,} chats, {who}':<22}{f['poll_200_p50_ms']:>9.1f}{f['poll_200_p95_ms']:>9.1f}"
                f"{f['poll_304_p50_ms']:>9.1f}{f['poll_304_p95_ms']:>9.1f}{f['counters_p50_ms']:>10.1f}"
                f"  {f['totals']['red']}/{f['totals']['grey']}"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    result = run(args.database_url, tuple(int(s) for s in args.sizes.split(",")), args.runs)
    print(report(result))


if __name__ == "__main__":
    main()
