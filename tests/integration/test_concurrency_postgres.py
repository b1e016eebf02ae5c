"""The issue's concurrency guarantees, on PostgreSQL with several OS processes racing for real:

* twenty reps answer the same new chat at the same instant: exactly one wins, fifty times over;
* a thousand new clients arrive through four processes at once with seven eligible reps: each rep
  gets 142 or 143 of them, and reps who may not get new clients get none;
* the gateway delivers every message five times at once, for 200 clients, to gunicorn workers
  whose CRM work runs in separate job-worker processes: the sandbox CRM ends up with exactly 200
  contacts and 200 leads (Kommo) or deals (Bitrix24).

The figures each test measured are printed (``-s`` shows them); nothing about time is asserted.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support.conversations import child_process_app, make_world
from widget.config import Settings
from widget.db import db
from widget.domain.visibility import OFFERED
from widget.models.conversations import Chat, CrmOperation, Message

pytestmark = [
    pytest.mark.postgres_only(reason="row locks and races across OS processes"),
    pytest.mark.slow,
]

PROCESSES = 4


_child_app = child_process_app


def _spawn(target: Any, arg_sets: list[tuple[Any, ...]], *extra: Any) -> list[Any]:
    """Run ``target(*args, *extra, results)`` in one spawned process per argument set; collect one
    result from each."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, *extra, results)) for args in arg_sets]
    for p in procs:
        p.start()
    out = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return out


# --- twenty reps answer the same new chat at once, fifty times -----------------------------------


def _answer_rounds(
    settings: Settings, account_id: int, chat_ids: list[int], employee_ids: list[int], barrier: Any, results: Any
) -> None:
    from widget.services.conversations.replies import send_reply

    app = _child_app(settings)
    out: list[tuple[int, int, str, str]] = []
    lock = threading.Lock()

    def answer(chat_id: int, emp: int, go: threading.Barrier) -> None:
        with app.app_context():
            go.wait()
            # What the chat panel's "Send" does on an offered chat (static/chats.js: expect_offer).
            res = send_reply(
                db, app.extensions["widget"].jobs, account_id, chat_id, emp, f"Hi, {emp} here", expect_offer=True
            )
            with lock:
                out.append((chat_id, emp, res.status, res.detail))

    for chat_id in chat_ids:
        go = threading.Barrier(len(employee_ids))
        threads = [threading.Thread(target=answer, args=(chat_id, e, go)) for e in employee_ids]
        barrier.wait()  # every process starts the round together
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    db.engine.dispose()
    results.put(out)


def test_twenty_reps_answer_the_same_new_chat_one_wins_fifty_times(app: Flask, client: FlaskClient, settings: Settings):
    rounds, reps = 50, 20
    w = make_world(app, n_users=reps + 1, roles={i: ("seller", True) for i in range(1, reps + 1)})
    for n in range(1, rounds + 1):
        assert w.post(client, w.payload(n)).status_code == 200
    with db.transaction() as s:
        chat_ids = list(s.execute(select(Chat.id).where(Chat.assignment == OFFERED).order_by(Chat.id)).scalars())
    assert len(chat_ids) == rounds
    emps = [w.emp(i) for i in range(1, reps + 1)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)

    started = time.perf_counter()
    batches = _spawn(
        _answer_rounds,
        [(settings, w.account_id, chat_ids, emps[k::PROCESSES]) for k in range(PROCESSES)],
        barrier,
    )
    elapsed = time.perf_counter() - started
    answers = [a for batch in batches for a in batch]

    assert len(answers) == rounds * reps
    winners_by_chat: dict[int, list[int]] = {}
    for chat_id, emp, status, _ in answers:
        if status == "sent":
            winners_by_chat.setdefault(chat_id, []).append(emp)
    assert sorted(winners_by_chat) == chat_ids and all(len(v) == 1 for v in winners_by_chat.values())
    with db.transaction() as s:
        for chat_id, [winner] in winners_by_chat.items():
            chat = s.get(Chat, chat_id)
            assert chat is not None and chat.responsible_employee_id == winner
        replies = Counter(s.execute(select(Message.chat_id).where(Message.direction == "out")).scalars())
        delivered = Counter(
            s.execute(select(Message.delivery).where(Message.direction == "out", Message.chat_id.in_(chat_ids)))
            .scalars()
            .all()
        )
        told_crm = {
            op.chat_id: json.loads(op.payload)["crm_user_id"]
            for op in s.execute(select(CrmOperation).where(CrmOperation.kind == "set_responsible")).scalars()
        }
    assert replies == Counter(dict.fromkeys(chat_ids, 1))  # a losing reply is never stored
    assert delivered == Counter({"sent": rounds})  # the winner's reply left (each process's fake transport)
    # The CRM is told once per chat, and it is told the winner (the contact and lead change responsible).
    assert told_crm == {chat_id: w.crm_users[winner] for chat_id, [winner] in winners_by_chat.items()}
    names = {w.emp(i): f"User {i}" for i in range(1, reps + 1)}
    for chat_id, _emp, status, detail in answers:
        if status != "sent":
            [winner] = winners_by_chat[chat_id]
            assert status == "taken" and f"taken by {names[winner]}" in detail
    wins = Counter(v[0] for v in winners_by_chat.values())
    print(
        f"\n{rounds} rounds x {reps} reps over {PROCESSES} processes: one winner every round "
        f"({len(wins)} different reps won), {elapsed:.1f}s"
    )


# --- a thousand new clients, four processes, seven eligible reps ---------------------------------


def _deliver(settings: Settings, account_id: int, channel_id: int, numbers: list[int], results: Any) -> None:
    from widget.domain.inbound import InboundMessage
    from widget.services.inbound.messages import store_inbound

    app = _child_app(settings)
    with app.app_context():
        for n in numbers:
            store_inbound(
                db,
                app.extensions["widget"].jobs,
                account_id,
                InboundMessage(
                    message_id=f"m-{n}",
                    channel_id=channel_id,
                    chat_type="whatsapp",
                    chat_id=f"chat-{n}",
                    phone=f"+1555{n:07d}",
                    sender_name=f"Client {n}",
                    text="hello",
                    sent_at=datetime.now(UTC),
                ),
            )  # the immediate queue runs resolve + create in this process
    db.engine.dispose()
    results.put(len(numbers))


def test_a_thousand_new_clients_over_four_processes_are_shared_fairly(app: Flask, settings: Settings):
    eligible = {i: ("seller", True) for i in range(1, 6)} | {6: ("head", True), 7: ("head", True)}
    ineligible = {
        8: ("seller", False),  # toggle off
        9: ("head", False),
        10: ("qc", False),
        11: ("seller", True),  # toggle on but inactive in the CRM
    }
    w = make_world(app, n_users=12, roles=eligible | ineligible, distribution="round_robin", inactive=(11,))
    clients = 1000
    numbers = list(range(1, clients + 1))

    started = time.perf_counter()
    done = _spawn(_deliver, [(settings, w.account_id, w.channel_id, numbers[k::PROCESSES]) for k in range(PROCESSES)])
    elapsed = time.perf_counter() - started

    assert sum(done) == clients
    with db.transaction() as s:
        owners = Counter(s.execute(select(Chat.responsible_employee_id)).scalars())
        unfinished = s.execute(
            select(func.count()).select_from(CrmOperation).where(CrmOperation.status != "done")
        ).scalar_one()
    assert unfinished == 0
    assert sum(owners.values()) == clients
    assert set(owners) == {w.emp(i) for i in eligible}
    # 1000 = 7 x 142 + 6: six reps get 143 and one gets 142, whichever process handled whom.
    assert sorted(owners.values()) == [142] + [143] * 6
    print(
        f"\n{clients} new clients over {PROCESSES} processes in {elapsed:.1f}s: "
        f"{sorted(owners.values())} to the 7 eligible reps, 0 to the 4 ineligible"
    )


# --- every message five times at once, 200 clients, gunicorn + job workers + sandbox CRMs --------


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    from faults.stack import Stack, StackConfig, drop_database, recreate_database, with_database

    # Its own database: gunicorn and the workers are other processes, outside the suite's cleanup.
    url = with_database(os.environ["TEST_DATABASE_URL"], f"concurrency_{uuid.uuid4().hex[:8]}")
    recreate_database(url)
    # Duplicates are the point here, not the CRMs' rate limits (the fault suite storms those):
    # both sandboxes and our clients allow 50 requests a second.
    config = StackConfig(
        database_url=url,
        kommo_rate=50,
        bitrix24_rate=50,
        bitrix24_burst=250,
        env={"KOMMO_RATE_PER_SECOND": "50", "BITRIX24_RATE_PER_SECOND": "50", "BITRIX24_BURST": "250"},
    )
    try:
        with Stack(config) as running:
            yield running
    finally:
        drop_database(url)


@pytest.mark.parametrize("crm", ["kommo", "bitrix24"])
def test_each_message_five_times_at_once_for_200_clients_gives_200_contacts_and_200_leads(stack: Any, crm: str):
    from faults.census import wait_drained
    from faults.gateway import message, send
    from faults.tenants import bitrix24_tenant, kommo_tenant

    tenant = kommo_tenant(stack) if crm == "kommo" else bitrix24_tenant(stack)
    prefix = "9" if crm == "kommo" else "8"
    clients = [f"{prefix}55{n:07d}" for n in range(200)]
    deliveries = [d for d in (message(tenant, c) for c in clients) for _ in range(5)]  # copies side by side

    started = time.monotonic()
    stats = send(stack.url, deliveries, concurrency=25)
    sent = time.monotonic()
    census, outbox, drained = wait_drained(tenant, prefix, set(clients), sent, timeout=240)

    assert stats.refused == [] and stats.deliveries == 1000
    assert drained is not None, f"CRM work still pending: {outbox}"
    assert (census.contacts, census.entities) == (200, 200)
    assert (census.lost, census.duplicated) == (0, 0)
    assert outbox.chats == 200 and outbox.failed_ops == 0
    print(
        f"\n{crm}: 1000 deliveries (200 clients x 5) in {sent - started:.1f}s, CRM drained {drained:.1f}s later: "
        f"{census.contacts} contacts, {census.entities} {'leads' if crm == 'kommo' else 'deals'}"
    )
