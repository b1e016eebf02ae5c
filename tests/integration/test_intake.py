"""The gateway intake: a delivery is acknowledged once durably stored, and processed by a job that
may be lost, repeated, run concurrently or killed halfway without losing or duplicating anything."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from tests.support.conversations import World, make_world
from tests.support.jobs import jobs_replaced
from widget.db import db
from widget.domain.ports import JobQueue
from widget.jobs.queue import NUDGE_INTERVAL, _Nudger
from widget.models._base import utcnow
from widget.models.conversations import Chat, Client, CrmOperation, Message
from widget.models.intake import InboundDelivery
from widget.services.channels import signing
from widget.services.inbound import processing, receipts


@pytest.fixture
def world(app: Flask, database_url: str) -> Iterator[World]:
    yield make_world(app, roles={1: ("seller", True), 2: ("seller", True), 3: ("head", False)})


@pytest.fixture
def no_jobs(app: Flask) -> Iterator[list[str]]:
    """Nudges are recorded, not run: the test decides when (and how often) the job runs."""
    nudged: list[str] = []
    with jobs_replaced(app, lambda name, *args, delay=None: nudged.append(name)):
        yield nudged


def jobs_of(world: World) -> JobQueue:
    return world.app.extensions["widget"].jobs  # type: ignore[no-any-return]


def count(model: Any) -> int:
    with db.transaction() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def deliveries() -> list[InboundDelivery]:
    with db.transaction() as s:
        return list(s.execute(select(InboundDelivery).order_by(InboundDelivery.id)).scalars())


def test_the_acknowledgement_stores_the_delivery_and_nudges_the_job(client: Any, world: World, no_jobs: list[str]):
    res = world.post(client, world.payload(1))
    assert res.status_code == 200
    answer = res.get_json()
    assert answer["status"] == "stored" and isinstance(answer["delivery_id"], int)
    [row] = deliveries()
    assert row.id == answer["delivery_id"] and row.processed_at is None
    assert json.loads(row.body)["message_id"] == "msg-1"
    assert no_jobs == [receipts.JOB_NAME]
    assert count(Message) == 0  # not yet: the job makes the chat

    assert processing.process_pending(db, jobs_of(world)) == 1
    [row] = deliveries()
    assert row.processed_at is not None and row.outcome == "stored"
    with db.transaction() as s:
        msg = s.execute(select(Message)).scalar_one()
        assert msg.gateway_message_id == "msg-1" and msg.text == "Hello from client 1"


def test_a_redelivery_after_processing_is_a_duplicate_and_changes_nothing(
    client: Any, world: World, no_jobs: list[str]
):
    world.post(client, world.payload(1))
    processing.process_pending(db, jobs_of(world))
    again = world.post(client, world.payload(1))
    assert again.status_code == 200 and again.get_json() == {"status": "duplicate"}
    assert count(InboundDelivery) == 1 and count(Message) == 1
    assert processing.process_pending(db, jobs_of(world)) == 0


def test_a_lost_nudge_is_covered_by_the_sweep(app: Flask, client: Any, world: World, no_jobs: list[str]):
    for n in (1, 2, 3):
        world.post(client, world.payload(n))
    no_jobs.clear()  # the queue lost them
    from widget.jobs import conversation_jobs

    with app.app_context():
        conversation_jobs.sweep_inbound()
    assert count(Message) == 3 and count(Chat) == 3
    assert all(row.outcome == "stored" for row in deliveries())


def test_a_job_killed_after_storing_leaves_no_duplicate_when_the_lease_runs_out(
    client: Any, world: World, no_jobs: list[str], monkeypatch: pytest.MonkeyPatch
):
    world.post(client, world.payload(1))
    world.post(client, world.payload(2, chat_id="chat-1", phone="+15550000001"))  # the same chat, again

    class Killed(BaseException):
        pass

    def die(*_a: Any, **_k: Any) -> None:
        raise Killed()

    # The worker stores both messages and dies before it can mark the rows processed.
    monkeypatch.setattr(processing, "_finish", die)
    with pytest.raises(Killed):
        processing.process_pending(db, jobs_of(world))
    monkeypatch.undo()
    assert count(Message) == 2 and all(r.processed_at is None for r in deliveries())
    # Another worker right away: the rows are leased, it takes nothing.
    assert processing.process_pending(db, jobs_of(world)) == 0
    # Once the lease has run out, they are taken again: stored once, now marked.
    later = utcnow() + processing.LEASE + timedelta(seconds=1)
    assert processing.process_pending(db, jobs_of(world), now=later) == 2
    assert [r.outcome for r in deliveries()] == ["duplicate", "duplicate"]
    assert count(Message) == 2 and count(Chat) == 1 and count(Client) == 1
    assert all(r.attempts == 2 for r in deliveries())
    assert count(CrmOperation) == 1  # one client lookup recorded, not two


def test_a_failing_row_does_not_hold_up_the_others_and_is_retried(
    client: Any, world: World, no_jobs: list[str], monkeypatch: pytest.MonkeyPatch
):
    for n in (1, 2, 3):
        world.post(client, world.payload(n))
    real = processing.store_inbound

    def flaky(database: Any, jobs: Any, account_id: int, message: Any, now: Any = None) -> Any:
        if message.message_id == "msg-2":
            raise RuntimeError("database hiccup")
        return real(database, jobs, account_id, message, now=now)

    monkeypatch.setattr(processing, "store_inbound", flaky)
    assert processing.process_pending(db, jobs_of(world)) == 2
    monkeypatch.undo()
    rows = {json.loads(r.body)["message_id"]: r for r in deliveries()}
    assert rows["msg-2"].processed_at is None and rows["msg-1"].outcome == rows["msg-3"].outcome == "stored"
    assert processing.process_pending(db, jobs_of(world)) == 0  # still leased
    assert processing.process_pending(db, jobs_of(world), now=utcnow() + processing.LEASE + timedelta(seconds=1)) == 1
    assert count(Message) == 3


def test_a_row_that_no_longer_parses_is_kept_and_marked_invalid(client: Any, world: World, no_jobs: list[str]):
    world.post(client, world.payload(1))
    with db.transaction() as s:
        s.execute(update(InboundDelivery).values(body='{"channel_id": 1}'))
    assert processing.process_pending(db, jobs_of(world)) == 1
    [row] = deliveries()
    assert row.outcome == processing.INVALID and row.body == '{"channel_id": 1}'
    assert count(Message) == 0


def test_processing_keeps_the_order_of_arrival_for_one_chat(client: Any, world: World, no_jobs: list[str]):
    for n in range(1, 6):
        world.post(client, world.payload(n, chat_id="chat-1", phone="+15550000001", text=f"part {n}"))
    processing.process_pending(db, jobs_of(world), batch=2)  # several leases
    with db.transaction() as s:
        chat = s.execute(select(Chat)).scalar_one()
        assert chat.last_message_preview == "part 5"
        assert [m.text for m in s.execute(select(Message).order_by(Message.id)).scalars()] == [
            f"part {n}" for n in range(1, 6)
        ]


def test_concurrent_processors_store_every_message_once(app: Flask, client: Any, world: World, no_jobs: list[str]):
    for n in range(1, 41):
        world.post(client, world.payload(n))
    errors: list[BaseException] = []
    done: list[int] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        try:
            with app.app_context():
                barrier.wait()
                done.append(processing.process_pending(db, jobs_of(world), batch=5))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(done) == 40  # every row processed by exactly one of them
    assert count(Message) == 40 and count(Chat) == 40
    assert all(r.outcome == "stored" for r in deliveries())
    assert count(CrmOperation) == 40  # one lookup per new client, recorded once


def test_the_nudger_pushes_after_every_acknowledgement() -> None:
    """Coalesced, but never lost: a poke after the last push always leads to one more push."""
    calls: list[str] = []

    def settled(expected_at_least: int) -> int:
        deadline = time.monotonic() + 5
        while len(calls) < expected_at_least and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(10 * NUDGE_INTERVAL)  # whatever else was coming has come
        return len(calls)

    nudger = _Nudger(lambda: calls.append(receipts.JOB_NAME), receipts.JOB_NAME)
    nudger.poke()
    assert settled(1) == 1
    for _ in range(50):
        nudger.poke()
    burst = settled(2)
    assert 2 <= burst < 51  # at least one push after the burst, and the burst shared pushes
    nudger.poke()
    assert settled(burst + 1) == burst + 1
    assert set(calls) == {receipts.JOB_NAME}


@pytest.mark.postgres_only(reason="the acknowledgement's fast path is PostgreSQL's")
def test_cached_keys_follow_a_rotation_at_once_here_and_within_the_ttl_elsewhere(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch
):
    from widget.services.channels.signing import rotate_gateway_secret

    here = receipts.postgres_intake(db)
    assert here is not None
    box = app.extensions["widget"].box
    elsewhere = receipts.PostgresIntake(str(db.url))  # another process's cache: nobody tells it
    clock = [1000.0]
    monkeypatch.setattr(receipts.time, "monotonic", lambda: clock[0])
    old = world.secret
    assert here.keys(box, world.channel_id).secrets == (old,)  # type: ignore[union-attr]
    assert elsewhere.keys(box, world.channel_id).secrets == (old,)  # type: ignore[union-attr]

    with db.transaction() as s:
        new = rotate_gateway_secret(s, box, world.account_id)
        # Not before the commit: a request now would read (and keep) the old keys again.
        assert here.keys(box, world.channel_id).secrets == (old,)  # type: ignore[union-attr]
    assert here.keys(box, world.channel_id).secrets == (new,)  # type: ignore[union-attr]
    clock[0] += receipts.KEYS_TTL - 0.1
    assert elsewhere.keys(box, world.channel_id).secrets == (old,)  # type: ignore[union-attr]
    clock[0] += 0.2
    assert elsewhere.keys(box, world.channel_id).secrets == (new,)  # type: ignore[union-attr]
    elsewhere_conns = list(elsewhere._conns.values())
    for _pid, conn in elsewhere_conns:
        conn.close()


@pytest.mark.postgres_only(reason="the acknowledgement's fast path is PostgreSQL's")
def test_the_fast_path_survives_a_dropped_connection(client: Any, world: World, no_jobs: list[str]):
    from faults.stack import terminate_connections

    assert world.post(client, world.payload(1)).status_code == 200
    assert terminate_connections(str(db.url)) >= 1  # ours included: a failover, a pooler restart
    signing.forget_keys()
    res = world.post(client, world.payload(2))
    assert res.status_code == 200 and res.get_json()["status"] == "stored"
    assert count(InboundDelivery) == 2


@pytest.mark.postgres_only(reason="the acknowledgement's fast path is PostgreSQL's")
def test_concurrent_acknowledgements_are_grouped_and_each_hears_its_own_answer(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch
):
    """40 threads: 30 distinct messages, 10 of them sent twice at the same instant; a channel that
    was deleted meanwhile fails only its own deliveries (404), not the ones written with them."""
    fast = receipts.postgres_intake(db)
    assert fast is not None
    now = utcnow()
    gone_channel = world.channel_id + 1000
    work: list[tuple[int, str]] = [(world.channel_id, f"g-{n}") for n in range(30)]
    work += [(world.channel_id, f"g-{n}") for n in range(10)]  # repeats
    work += [(gone_channel, f"x-{n}") for n in range(3)]
    answers: dict[int, Any] = {}
    barrier = threading.Barrier(len(work))
    sizes: list[int] = []
    write = fast._group._write

    def counted(batch: list[Any]) -> None:
        sizes.append(len(batch))
        write(batch)

    monkeypatch.setattr(fast._group, "_write", counted)

    def deliver(k: int, channel_id: int, message_id: str) -> None:
        params = (world.account_id, channel_id, message_id, json.dumps({"k": k}), now)
        barrier.wait()
        try:
            answers[k] = fast._group.insert(params)
        except receipts.ChannelGone as exc:
            answers[k] = exc

    threads = [threading.Thread(target=deliver, args=(k, *w)) for k, w in enumerate(work)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == len(work)
    stored: dict[str, list[int]] = {}
    for k, (channel_id, message_id) in enumerate(work):
        if channel_id == gone_channel:
            assert isinstance(answers[k], receipts.ChannelGone)
        elif answers[k] is not None:
            stored.setdefault(message_id, []).append(answers[k])
    assert sorted(stored) == sorted(f"g-{n}" for n in range(30))
    assert all(len(ids) == 1 for ids in stored.values())  # one "stored" per message, the rest duplicates
    with db.transaction() as s:
        rows = s.execute(select(InboundDelivery.id, InboundDelivery.gateway_message_id)).all()
    assert sorted(m for _i, m in rows) == sorted(stored)
    assert {m: i for i, m in rows} == {m: ids[0] for m, ids in stored.items()}
    assert sum(sizes) == len(work) and max(sizes) > 1  # written in groups, each delivery once
