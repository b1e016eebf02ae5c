"""Benchmark 2, the chat list: a sales rep's and a head's first page (50 chats) at 10k, 100k and 1M
chats over 1,000 employees, through ``chat_list.page.visible_page`` (what the chat panel's API calls
for a page: one statement reading the page and the employee's roles, then each chat's counter;
an employee's first page in a process reads the roles first: the warm-up runs see 30 of the 50
reps, so 20 of the timed rep pages are such first pages),
next to the same page written by hand in SQL against the same indexes (one statement per page:
the lower bound; it reads the roles in a subquery and computes no counters). Neither is kept
prepared: psycopg forgets its prepared statements at every rollback, so both are planned on every
call. Targets: a rep's p95 <= 10 ms at 1M, growth from 10k to 1M <= 2x, within 2x of the
hand-written bound.

The data is bulk-loaded with ``INSERT … SELECT generate_series`` (1M chats in about a minute).
Five heads see every channel; every other employee is a rep on one of 20 channels, responsible for
an equal share of the chats; one chat in a thousand is an open first-to-answer offer.

    .venv/bin/python bench/chat_list.py [--sizes 10000,100000,1000000] [--runs 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # standalone: python bench/<this>.py

from sqlalchemy import event, text

from bench.common import bench_database, percentile, sqlalchemy_url, table, write_results

CHANNELS, EMPLOYEES, HEADS = 20, 1000, 5
SIZES = (10_000, 100_000, 1_000_000)
REPS = list(range(HEADS + 1, HEADS + 51))  # the measured reps, taken in turn
HEAD = 1
TARGET_P95_MS, TARGET_GROWTH, TARGET_VS_HAND = 10.0, 2.0, 2.0


def seed(n: int) -> None:
    """Five heads on every channel, every other employee a rep on one channel responsible for an
    equal share of the chats; one chat in ten unanswered, one in a thousand an open offer.
    (Benchmark 2 and the chat panel poll share this data.)"""
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
            SELECT 1, ch, e, 'head', false, 0
            FROM generate_series(1, {CHANNELS}) ch, generate_series(1, {HEADS}) e""",
        f"""INSERT INTO channel_roles (account_id, channel_id, employee_id, role, gets_new_clients, assigned_count)
            SELECT 1, 1 + e % {CHANNELS}, e, 'seller', true, 0 FROM generate_series({HEADS + 1}, {EMPLOYEES}) e""",
        f"""INSERT INTO clients (id, account_id, key, phone, name, created_at)
            SELECT g, 1, 'phone:+1' || g, '+1' || g, 'Client ' || g, now() FROM generate_series(1, {n}) g""",
        # Chat g belongs to rep 6 + g % sellers, on that rep's channel.
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
    from widget.db import db

    with db.engine.begin() as c:
        for sql in statements:
            c.execute(text(sql))


# The first page written by hand: one statement, straight down the indexes the service uses.
HAND_REP = text(
    """
    (SELECT c.id, c.channel_id, c.title, c.last_message_at, c.last_message_preview, c.assignment,
            c.responsible_employee_id, c.unanswered
       FROM chats c
      WHERE c.account_id = :account AND c.responsible_employee_id = :emp AND c.assignment <> 'offered'
        AND c.channel_id IN (SELECT channel_id FROM channel_roles
                              WHERE account_id = :account AND employee_id = :emp AND role = 'seller')
      ORDER BY c.last_message_at DESC, c.id DESC LIMIT 50)
    UNION ALL
    (SELECT c.id, c.channel_id, c.title, c.last_message_at, c.last_message_preview, c.assignment,
            c.responsible_employee_id, c.unanswered
       FROM chat_offers o JOIN chats c ON c.id = o.chat_id
      WHERE o.account_id = :account AND o.employee_id = :emp AND c.assignment = 'offered'
      ORDER BY c.last_message_at DESC, c.id DESC LIMIT 50)
    ORDER BY last_message_at DESC, id DESC LIMIT 50
    """
)
HAND_HEAD = text(
    """
    SELECT c.id, c.channel_id, c.title, c.last_message_at, c.last_message_preview, c.assignment,
           c.responsible_employee_id, c.unanswered
      FROM chats c
     WHERE c.account_id = :account
       AND c.channel_id IN (SELECT channel_id FROM channel_roles
                             WHERE account_id = :account AND employee_id = :emp AND role IN ('head', 'qc'))
     ORDER BY c.last_message_at DESC, c.id DESC LIMIT 50
    """
)


def _time(fn: Any, employees: list[int], runs: int) -> list[float]:
    times = []
    for i in range(runs):
        emp = employees[i % len(employees)]
        t0 = time.perf_counter()
        fn(emp)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def measure(runs: int) -> dict[str, Any]:
    from widget.db import db
    from widget.services.conversations.chat_list.page import visible_page

    statements = {"n": 0}

    def count(*_: Any) -> None:
        statements["n"] += 1

    def service(emp: int) -> int:
        with db.session() as s:
            return len(visible_page(s, 1, emp))

    def by_hand(sql: Any) -> Any:
        def run(emp: int) -> int:
            with db.engine.connect() as c:
                return len(c.execute(sql, {"account": 1, "emp": emp}).all())

        return run

    out: dict[str, Any] = {}
    for who, emps, hand in (("rep", REPS, HAND_REP), ("head", [HEAD], HAND_HEAD)):
        assert service(emps[0]) == by_hand(hand)(emps[0]), f"the hand-written {who} page differs in size"
        _time(service, emps, 30)  # warm caches and prepared statements
        _time(by_hand(hand), emps, 30)
        event.listen(db.engine, "before_cursor_execute", count)
        statements["n"] = 0
        service(emps[0])
        event.remove(db.engine, "before_cursor_execute", count)
        ours = _time(service, emps, runs)
        bound = _time(by_hand(hand), emps, runs)
        out[who] = {
            "page": service(emps[0]),
            "statements": statements["n"],
            "p50_ms": statistics.median(ours),
            "p95_ms": percentile(ours, 95),
            "hand_p50_ms": statistics.median(bound),
            "hand_p95_ms": percentile(bound, 95),
        }
    return out


def run(database_url: str | None = None, *, sizes: tuple[int, ...] = SIZES, runs: int = 300) -> dict[str, Any]:
    from widget.db import db
    from widget.migrate import upgrade

    url = sqlalchemy_url(bench_database(database_url))
    upgrade(url)
    db.configure(url)
    by_size: dict[str, Any] = {}
    try:
        for n in sizes:
            t0 = time.perf_counter()
            seed(n)
            seeded = time.perf_counter() - t0
            by_size[str(n)] = {"seed_s": seeded, **measure(runs)}
    finally:
        db.engine.dispose()
    small, large = by_size[str(min(sizes))], by_size[str(max(sizes))]
    rep_large = large["rep"]["p95_ms"]
    growth = rep_large / small["rep"]["p95_ms"] if small["rep"]["p95_ms"] else float("inf")
    vs_hand = rep_large / large["rep"]["hand_p95_ms"] if large["rep"]["hand_p95_ms"] else float("inf")
    met = {
        "rep_p95_at_largest": rep_large <= TARGET_P95_MS,
        "growth": growth <= TARGET_GROWTH,
        "vs_hand_written": vs_hand <= TARGET_VS_HAND,
    }
    return {
        "config": {"employees": EMPLOYEES, "channels": CHANNELS, "heads": HEADS, "runs": runs, "page": 50},
        "sizes": by_size,
        "rep_growth_smallest_to_largest": growth,
        "rep_vs_hand_written_at_largest": vs_hand,
        "targets": {"rep_p95_ms_max": TARGET_P95_MS, "growth_max": TARGET_GROWTH, "vs_hand_max": TARGET_VS_HAND},
        "met_detail": met,
        "met": all(met.values()) and max(sizes) >= 1_000_000,
    }


def report(result: dict[str, Any]) -> str:
    rows = []
    for n, fig in result["sizes"].items():
        for who in ("rep", "head"):
            f = fig[who]
            rows.append(
                (
                    f"{int(n):,} chats, {who}",
                    f["p50_ms"],
                    f["p95_ms"],
                    f["hand_p50_ms"],
                    f["hand_p95_ms"],
                    f["statements"],
                    f["page"],
                )
            )
    body = table(("first page", "p50 ms", "p95 ms", "by hand p50", "by hand p95", "SQL stmts", "chats"), rows)
    m = result["met_detail"]
    largest = max(int(n) for n in result["sizes"])
    verdict = (
        f"rep p95 at {largest:,}: {result['sizes'][str(largest)]['rep']['p95_ms']:.2f} ms (target <= "
        f"{TARGET_P95_MS:.0f}: {'met' if m['rep_p95_at_largest'] else 'MISSED'}); growth "
        f"{result['rep_growth_smallest_to_largest']:.2f}x (<= {TARGET_GROWTH:.0f}x: "
        f"{'met' if m['growth'] else 'MISSED'}); vs hand-written {result['rep_vs_hand_written_at_largest']:.2f}x "
        f"(<= {TARGET_VS_HAND:.0f}x: {'met' if m['vs_hand_written'] else 'MISSED'})"
    )
    if largest < 1_000_000:
        verdict += "; 1M not run (python -m bench without --short, or --chats / --sizes)"
    cfg = result["config"]
    head = f"2. Chat list — {cfg['employees']:,} employees, {cfg['channels']} channels, {cfg['runs']} runs per figure"
    return f"{head}\n{body}\n{verdict}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    result = run(args.database_url, sizes=tuple(int(s) for s in args.sizes.split(",")), runs=args.runs)
    print(report(result))
    write_results({"chat_list": result})


if __name__ == "__main__":
    main()
