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

from sqlalchemy import create_engine, text

DEFAULT_DB = "postgresql://postgres@127.0.0.1/chatpanel_bench"
SIZES = (100_000,)
CHANNELS, EMPLOYEES, HEADS = 20, 1000, 5
HEAD, REP = 1, HEADS + 1


def recreate(url: str) -> None:
    base, name = url.rsplit("/", 1)
    engine = create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def seed(n: int) -> None:
    """Five heads on every channel, every other employee a rep on one channel responsible for an
    equal share of the chats; one chat in ten unanswered, one in a thousand an open offer."""
    from widget.db import db

    sellers = EMPLOYEES - HEADS
    statements = [
        "TRUNCATE accounts RESTART IDENTITY CASCADE",
        """INSERT INTO accounts (id, crm, external_id, domain, name, status, status_reason, crm_mode,
               installed_at, updated_at)
           VALUES (1, 'kommo', 'b1', 'bench.kommo.test', '', 'active', '', 'classic', now(), now())""",
        f"""INSERT INTO channels (id, account_id, transport, name, address, is_enabled, created_at)
            SELECT g, 1, 'whatsapp', 'ch' || g, '+1' || g, true, now() FROM generate_series(1, {CHANNELS}) g""",
        f"""INSERT INTO employees (id, account_id, crm_user_id, name, email, lang, is_active, is_admin, in_crm,
                synced_at)
            SELECT g, 1, g::text, 'Emp ' || g, '', 'en', true, g = 1, true, now()
            FROM generate_series(1, {EMPLOYEES}) g""",
        f"""INSERT INTO channel_roles (account_id, channel_id, employee_id, role, gets_new_clients, assigned_count)
            SELECT 1, ch, e, 'head', false, 0 FROM generate_series(1, {CHANNELS}) ch, generate_series(1, {HEADS}) e""",
        f"""INSERT INTO channel_roles (account_id, channel_id, employee_id, role, gets_new_clients, assigned_count)
            SELECT 1, 1 + e % {CHANNELS}, e, 'seller', true, 0 FROM generate_series({HEADS + 1}, {EMPLOYEES}) e""",
        f"""INSERT INTO clients (id, account_id, key, phone, name, created_at)
            SELECT g, 1, 'phone:+1' || g, '+1' || g, 'Client ' || g, now() FROM generate_series(1, {n}) g""",
        f"""INSERT INTO chats (id, account_id, channel_id, client_id, chat_type, external_chat_id, title,
                assignment, responsible_employee_id, is_new_client, last_message_at, last_message_preview,
                last_direction, unanswered, unanswered_since, created_at)
            SELECT g, 1, 1 + ({HEADS + 1} + g % {sellers}) % {CHANNELS}, g, 'whatsapp', 'c' || g, 'Client ' || g,
                CASE WHEN g % 1000 = 0 THEN 'offered' ELSE 'assigned' END,
                {HEADS + 1} + g % {sellers}, false, now() - (random() * interval '365 days'), 'hello', 'in',
                g % 10 = 0, CASE WHEN g % 10 = 0 THEN now() - interval '1 day' END, now()
            FROM generate_series(1, {n}) g""",
        """INSERT INTO chat_offers (chat_id, employee_id, account_id, offered_at)
           SELECT id, responsible_employee_id, 1, now() FROM chats WHERE assignment = 'offered'""",
        "ANALYZE",
    ]
    with db.engine.begin() as c:
        for sql in statements:
            c.execute(text(sql))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


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
    from widget.services.chat_views import totals

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
    from widget.config import Settings
    from widget.db import db
    from widget.migrate import upgrade

    raw = database_url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DB
    recreate(raw)
    url = Settings.from_env({"DATABASE_URL": raw, "SANDBOX": "1", "INSTANCE_PATH": "/tmp"}).database_url
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
