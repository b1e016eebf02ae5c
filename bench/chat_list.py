"""Chat list at scale: a sales rep's and a head's first page over N chats (default 1,000,000).

Target: a rep's first page p95 <= 10 ms at 1M chats. Needs PostgreSQL (SQLite works, slowly, for
small N). Creates its own schema in the given database, which it empties first.

    .venv/bin/python bench/chat_list.py postgresql://postgres@127.0.0.1/bench_chats --chats 1000000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from sqlalchemy import text

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from widget.config import Settings
from widget.db import db
from widget.migrate import upgrade
from widget.services.conversations import list_chats

CHANNELS, EMPLOYEES = 5, 200


def seed(n: int) -> tuple[int, int, int]:
    statements = [
        """INSERT INTO accounts (id, crm, external_id, domain, name, status, status_reason, crm_mode,
               installed_at, updated_at)
           VALUES (1, 'kommo', 'b1', 'bench.kommo.test', '', 'active', '', 'classic', now(), now())""",
        f"""INSERT INTO channels (id, account_id, transport, name, address, is_enabled, created_at)
            SELECT g, 1, 'whatsapp', 'ch' || g, '+1' || g, true, now() FROM generate_series(1, {CHANNELS}) g""",
        f"""INSERT INTO employees (id, account_id, crm_user_id, name, email, lang, is_active, is_admin, in_crm,
                synced_at)
            SELECT g, 1, g::text, 'Emp ' || g, '', 'en', true, g = 1, true, now()
            FROM generate_series(1, {EMPLOYEES}) g""",
        # Employees 1-5 are heads on every channel; the rest are sellers on one channel each.
        f"""INSERT INTO channel_roles (account_id, channel_id, employee_id, role, gets_new_clients, assigned_count)
            SELECT 1, ch, e, 'head', false, 0 FROM generate_series(1, {CHANNELS}) ch, generate_series(1, 5) e""",
        f"""INSERT INTO channel_roles (account_id, channel_id, employee_id, role, gets_new_clients, assigned_count)
            SELECT 1, 1 + e % {CHANNELS}, e, 'seller', true, 0 FROM generate_series(6, {EMPLOYEES}) e""",
        f"""INSERT INTO clients (id, account_id, key, phone, name, created_at)
            SELECT g, 1, 'phone:+1' || g, '+1' || g, 'Client ' || g, now() FROM generate_series(1, {n}) g""",
        f"""INSERT INTO chats (id, account_id, channel_id, client_id, chat_type, external_chat_id, title,
                assignment, responsible_employee_id, is_new_client, last_message_at, last_message_preview,
                last_direction, unanswered, created_at)
            SELECT g, 1, 1 + (6 + g % {EMPLOYEES - 5}) % {CHANNELS}, g, 'whatsapp', 'c' || g, 'Client ' || g,
                CASE WHEN g % 1000 = 0 THEN 'offered' ELSE 'assigned' END,
                6 + g % {EMPLOYEES - 5}, false, now() - (random() * interval '365 days'), 'hello', 'in',
                g % 10 = 0, now()
            FROM generate_series(1, {n}) g""",
        """INSERT INTO chat_offers (chat_id, employee_id, account_id, offered_at)
           SELECT id, responsible_employee_id, 1, now() FROM chats WHERE assignment = 'offered'""",
        "ANALYZE",
    ]
    with db.engine.begin() as c:
        for sql in statements:
            c.execute(text(sql))
    return 1, 7, 1  # account, a seller, a head


def measure(account_id: int, employee_id: int, runs: int) -> tuple[float, float, int]:
    times = []
    for _ in range(runs):
        with db.session() as s:
            t0 = time.perf_counter()
            items = list_chats(s, account_id, employee_id)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], len(items)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("database_url")
    ap.add_argument("--chats", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--reuse", action="store_true", help="measure the data a previous run seeded")
    args = ap.parse_args()
    url = Settings.from_env({"DATABASE_URL": args.database_url, "SANDBOX": "1"}).database_url
    upgrade(url)
    db.configure(url)
    account, seller, head = 1, 7, 1
    if not args.reuse:
        with db.engine.begin() as c:
            c.execute(text("TRUNCATE accounts RESTART IDENTITY CASCADE"))
        t0 = time.perf_counter()
        account, seller, head = seed(args.chats)
        print(f"seeded {args.chats:,} chats in {time.perf_counter() - t0:.1f}s")
    for who, emp in (("rep (seller)", seller), ("head", head)):
        measure(account, emp, 20)  # warm the cache
        p50, p95, n = measure(account, emp, args.runs)
        print(f"{who:13s} first page ({n} chats): p50 {p50:.2f} ms  p95 {p95:.2f} ms  over {args.runs} runs")


if __name__ == "__main__":
    main()
