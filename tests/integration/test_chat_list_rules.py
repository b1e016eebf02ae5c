"""The chat list's one statement (``chat_list.page.visible_page``) against the visibility rules
themselves (``widget.domain.visibility``), on random accounts: roles of every kind per channel
(none, seller, head, quality control, an empty or unknown role), employees switched off or gone
from the CRM, first-to-answer offers (also stale ones on chats no longer offered), chats with
and without a responsible, equal timestamps, "notify heads about all messages", and a second
account whose chats must never show. Every page, walked with the keyset cursor, must be exactly
the chats ``can_see`` allows, newest first, each with ``counter``'s marker, and the viewer read
with it must be ``viewer_for``'s — whatever branches the statement guessed the employee needs.
Runs on SQLite and, with ``TEST_DATABASE_URL``, on PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from widget.db import db
from widget.domain.visibility import ASSIGNMENTS, OFFERED, ChatFacts, can_see, counter
from widget.models import Account, AccountSettings, Channel, ChannelRole, Employee
from widget.models.conversations import Chat, ChatOffer, Client
from widget.services.conversations.chat_list import page as chat_list_page
from widget.services.conversations.chat_list.page import list_page, visible_page, visible_page_and_viewer
from widget.services.conversations.viewers import viewer_for

ROLE_CHOICES = (None, "seller", "seller", "head", "qc", "", "supervisor")  # None: no row at all
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _world(rnd: random.Random) -> dict[str, Any]:
    """Two accounts; the first one random, the second a decoy with the same kinds of rows."""
    ids: dict[str, Any] = {"employees": [], "channels": []}
    with db.transaction() as s:
        accounts = [
            Account(crm="kommo", external_id=f"r{n}", domain=f"r{n}.kommo.test", status="active") for n in (1, 2)
        ]
        s.add_all(accounts)
        s.flush()
        ids["account"], ids["other_account"] = accounts[0].id, accounts[1].id
        for acc in accounts:
            if rnd.random() < 0.8:
                s.add(AccountSettings(account_id=acc.id, notify_heads_all=rnd.random() < 0.4))
            channels = [
                Channel(account_id=acc.id, transport="whatsapp", name=f"c{i}", address=f"+1{i}") for i in range(4)
            ]
            employees = [
                Employee(
                    account_id=acc.id,
                    crm_user_id=str(i),
                    name=f"E{i}",
                    is_active=rnd.random() < 0.85,
                    in_crm=rnd.random() < 0.9,
                )
                for i in range(7)
            ]
            s.add_all(channels + employees)
            s.flush()
            for e in employees:
                for ch in channels:
                    role = rnd.choice(ROLE_CHOICES)
                    if role is not None:
                        s.add(ChannelRole(account_id=acc.id, channel_id=ch.id, employee_id=e.id, role=role or None))
            clients = [Client(account_id=acc.id, key=f"k{i}", phone=f"+2{i}") for i in range(40)]
            s.add_all(clients)
            s.flush()
            for i, client in enumerate(clients):
                assignment = rnd.choice(ASSIGNMENTS)
                chat = Chat(
                    account_id=acc.id,
                    channel_id=rnd.choice(channels).id,
                    client_id=client.id,
                    chat_type="whatsapp",
                    external_chat_id=f"x{i}",
                    title=f"Chat {i}",
                    assignment=assignment,
                    responsible_employee_id=rnd.choice([None, *(e.id for e in employees)]),
                    # Few distinct times: the order must break ties by id, as the cursor does.
                    last_message_at=EPOCH + timedelta(minutes=rnd.randrange(12)),
                    last_message_preview=f"p{i}",
                    unanswered=rnd.random() < 0.6,
                )
                s.add(chat)
                s.flush()
                # Offers: on offered chats, and now and then a stale one left on a chat since taken.
                if assignment == OFFERED or rnd.random() < 0.1:
                    for e in rnd.sample(employees, rnd.randrange(4)):
                        s.add(ChatOffer(chat_id=chat.id, employee_id=e.id, account_id=acc.id))
            if acc is accounts[0]:
                ids["employees"] = [e.id for e in employees]
                ids["channels"] = [ch.id for ch in channels]
            else:
                ids["other_employees"] = [e.id for e in employees]
    return ids


def _some_channels(rnd: random.Random, channels: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A guess of the channels an employee sees entirely and sees their own on (maybe wrong)."""
    pick = [ch for ch in channels if rnd.random() < 0.5]
    entirely = tuple(sorted(ch for ch in pick if rnd.random() < 0.5))
    return entirely, tuple(sorted(set(pick) - set(entirely)))


def _expected(account_id: int, employee_id: int) -> list[tuple[int, Any]]:
    """The rules, applied to every chat of the account one by one."""
    with db.session() as s:
        viewer = viewer_for(s, account_id, employee_id)
        offers: dict[int, set[int]] = {}
        for chat_id, emp in s.execute(select(ChatOffer.chat_id, ChatOffer.employee_id)):
            offers.setdefault(chat_id, set()).add(emp)
        chats = s.execute(select(Chat).where(Chat.account_id == account_id)).scalars().all()
        shown = []
        for c in chats:
            facts = ChatFacts(
                c.channel_id,
                c.assignment,
                c.responsible_employee_id,
                frozenset(offers.get(c.id, ())) if c.assignment == OFFERED else frozenset(),
                c.unanswered,
            )
            if can_see(viewer, facts):
                shown.append((c.last_message_at, c.id, counter(viewer, facts)))
    shown.sort(key=lambda t: (t[0], t[1]), reverse=True)
    return [(chat_id, mark) for _, chat_id, mark in shown]


def _walk(account_id: int, employee_id: int, limit: int) -> list[tuple[int, Any]]:
    """Every page, each read after the last one's cursor."""
    seen: list[tuple[int, Any]] = []
    before = None
    for _ in range(100):
        with db.session() as s:
            page = visible_page(s, account_id, employee_id, limit=limit, before=before)
        seen.extend((i.chat_id, i.counter) for i in page)
        assert len(page) <= limit
        if len(page) < limit:
            return seen
        before = (page[-1].last_message_at, page[-1].chat_id)
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("seed", range(8))
def test_pages_are_the_rules(app: Flask, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(seed)
    ids = _world(rnd)
    account = ids["account"]
    # Employees of the account, one of the other account (asked for in this one), and nobody.
    who = [*ids["employees"], ids["other_employees"][0], 999_999]
    for round_ in range(2):
        for emp in who:
            expected = _expected(account, emp)
            # Whatever channels the statement was written for: none remembered (the employee's
            # first page), their roles as they are, or stale ones (roles changed since).
            for guess in (None, "now", *(_some_channels(rnd, ids["channels"]) for _ in range(4))):
                if guess is None:
                    monkeypatch.delitem(chat_list_page._ROLES_SEEN, (account, emp), raising=False)
                elif guess != "now":
                    monkeypatch.setitem(chat_list_page._ROLES_SEEN, (account, emp), guess)
                with db.session() as s:
                    items, viewer = visible_page_and_viewer(s, account, emp, limit=50)
                    assert viewer == viewer_for(s, account, emp)
                assert [(i.chat_id, i.counter) for i in items] == expected[:50], (seed, round_, emp, guess)
                assert chat_list_page._ROLES_SEEN[(account, emp)] == chat_list_page._channels_seen(viewer)
            for limit in (1, 3, 7):
                assert _walk(account, emp, limit) == expected, (seed, round_, emp, limit)
        # Roles change between two polls: the guesses kept from the first round are now stale.
        with db.transaction() as s:
            for role in s.execute(select(ChannelRole).where(ChannelRole.account_id == account)).scalars():
                if rnd.random() < 0.5:
                    role.role = rnd.choice(("seller", "head", "qc", None))
            for e in s.execute(select(Employee).where(Employee.account_id == account)).scalars():
                if rnd.random() < 0.2:
                    e.is_active = not e.is_active


def test_list_page_hands_on_the_viewer_it_read(app: Flask) -> None:
    """The panel's list reads the viewer with the page and passes it on to the totals: it must be
    the viewer ``viewer_for`` reads, for the global list and for the unanswered filter alike."""
    ids = _world(random.Random(99))
    account = ids["account"]
    with db.session() as s:
        for emp in ids["employees"]:
            employee = s.get(Employee, emp)
            expected = _expected(account, emp)
            for unanswered in (False, True):
                page = list_page(s, account, employee, limit=5, unanswered_only=unanswered)
                assert page.viewer == viewer_for(s, account, emp)
                # Marked chats are the visible unanswered ones.
                wanted = [i for i, mark in expected if mark is not None or not unanswered][:5]
                assert [r.id for r in page.rows] == wanted
        assert list_page(s, account, None).viewer.roles == {}
