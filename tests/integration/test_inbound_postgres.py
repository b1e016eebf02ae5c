"""Cross-process guarantees that only PostgreSQL can show (SQLite serialises every writer anyway):
round robin stays fair and a first-to-answer chat has one winner when several OS processes race."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.support.conversations import child_process_app, make_world
from widget.config import Settings
from widget.db import db
from widget.models.conversations import Chat, CrmOperation, Message

pytestmark = [
    pytest.mark.postgres_only(reason="row locks across OS processes"),
    pytest.mark.slow,
]

PROCESSES = 4


_app_in_child = child_process_app


def _deliver_new_clients(
    settings: Settings, account_id: int, channel_id: int, first: int, count: int, start: Any, done: Any
) -> None:
    from widget.domain.inbound import InboundMessage
    from widget.services.inbound.messages import store_inbound

    app = _app_in_child(settings)
    with app.app_context():
        start.wait()
        for n in range(first, first + count):
            msg = InboundMessage(
                message_id=f"m-{n}",
                channel_id=channel_id,
                chat_type="whatsapp",
                chat_id=f"chat-{n}",
                phone=f"+1555{n:07d}",
                sender_name=f"Client {n}",
                text="hello",
                sent_at=datetime.now(UTC),
            )
            store_inbound(
                db, app.extensions["widget"].jobs, account_id, msg
            )  # the immediate queue runs the CRM work inline
    done.put(count)


def _reply_race(
    settings: Settings, account_id: int, chat_id: int, employee_ids: list[int], start: Any, results: Any
) -> None:
    from widget.services.conversations.replies import send_reply

    app = _app_in_child(settings)
    out: list[tuple[int, str, str]] = []

    def reply(emp: int) -> None:
        with app.app_context():
            res = send_reply(
                db, app.extensions["widget"].jobs, account_id, chat_id, emp, f"reply from {emp}", expect_offer=True
            )
            out.append((emp, res.status, res.detail))

    threads = [threading.Thread(target=reply, args=(e,)) for e in employee_ids]
    start.wait()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put(out)


def _run(target: Any, arg_sets: list[tuple[Any, ...]]) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, start, queue)) for args in arg_sets]
    for p in procs:
        p.start()
    start.set()
    results = [queue.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def test_round_robin_is_fair_across_processes(app: Flask, settings: Settings, database_url: str):
    w = make_world(app, n_users=8, roles={i: ("seller", True) for i in range(1, 8)}, distribution="round_robin")
    per_process = 50
    _run(
        _deliver_new_clients,
        [(settings, w.account_id, w.channel_id, 1 + k * per_process, per_process) for k in range(PROCESSES)],
    )
    with db.transaction() as s:
        owners = Counter(s.execute(select(Chat.responsible_employee_id)).scalars())
        assert (
            s.execute(select(func.count()).select_from(CrmOperation).where(CrmOperation.status != "done")).scalar() == 0
        )
    assert sum(owners.values()) == PROCESSES * per_process == 200
    assert set(owners) == {w.emp(i) for i in range(1, 8)}
    # 200 = 7 x 28 + 4: four reps get 29, three get 28, whichever processes handled them.
    assert sorted(owners.values()) == [28, 28, 28, 29, 29, 29, 29]


def test_claim_race_across_processes_has_one_winner(app: Flask, client: Any, settings: Settings, database_url: str):
    w = make_world(app, n_users=21, roles={i: ("seller", True) for i in range(1, 21)}, distribution="first_reply")
    w.post(client, w.payload(1))
    with db.transaction() as s:
        chat_id = s.execute(select(Chat.id)).scalar_one()
    emps = [w.emp(i) for i in range(1, 21)]
    batches = [emps[k::PROCESSES] for k in range(PROCESSES)]
    results = [r for batch in _run(_reply_race, [(settings, w.account_id, chat_id, b) for b in batches]) for r in batch]
    assert len(results) == 20
    winners = [emp for emp, status, _ in results if status == "sent"]
    assert len(winners) == 1
    with db.transaction() as s:
        winner_id = s.execute(select(Chat.responsible_employee_id).where(Chat.id == chat_id)).scalar_one()
        assert winner_id == winners[0]
        [delivery] = s.execute(select(Message.delivery).where(Message.direction == "out")).scalars().all()
        assert delivery == "sent"  # only the winner's reply was stored, and it left
    taken = [detail for emp, status, detail in results if status != "sent"]
    assert len(taken) == 19 and all(f"taken by User {emps.index(winners[0]) + 1}" in d for d in taken)
