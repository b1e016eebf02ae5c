"""Who sees, who answers, and how the unanswered counter looks (product.md §1, §3, §5)."""

from __future__ import annotations

from widget.domain.roles import HEAD, QC, SELLER, capabilities, may_get_new_clients
from widget.domain.visibility import (
    ASSIGNED,
    OFFERED,
    RESOLVING,
    UNASSIGNED,
    ChatFacts,
    Counter,
    Viewer,
    WriteRight,
    can_see,
    can_write,
    counter,
    write_right,
)

CH = 7
ANA, BOB, HEIDI, QUINN, NOBODY = 1, 2, 3, 4, 5
ROLES = {ANA: SELLER, BOB: SELLER, HEIDI: HEAD, QUINN: QC}


def viewer(emp: int, *, notify_heads_all: bool = False) -> Viewer:
    return Viewer(emp, {CH: ROLES[emp]} if emp in ROLES else {}, notify_heads_all)


def chat(assignment: str = ASSIGNED, responsible: int | None = ANA, offered=(), unanswered: bool = True) -> ChatFacts:
    return ChatFacts(CH, assignment, responsible, frozenset(offered), unanswered)


def test_roles_are_capability_entries():
    assert capabilities(SELLER).see_own and capabilities(SELLER).write_own and not capabilities(SELLER).see_all
    assert capabilities(HEAD).see_all and capabilities(HEAD).write_any
    assert capabilities(QC).see_all and not capabilities(QC).writes_anything
    assert not capabilities(None).sees_anything
    assert not capabilities("unknown-future-role").sees_anything
    assert may_get_new_clients(SELLER) and may_get_new_clients(HEAD)
    assert not may_get_new_clients(QC) and not may_get_new_clients(None)


def test_seller_sees_and_answers_only_own_clients():
    own, other = chat(responsible=ANA), chat(responsible=BOB)
    assert can_see(viewer(ANA), own) and write_right(viewer(ANA), own) is WriteRight.ALLOWED
    assert not can_see(viewer(ANA), other) and not can_write(viewer(ANA), other)


def test_head_sees_and_answers_everything_qc_only_reads_none_sees_nothing():
    other = chat(responsible=BOB)
    assert can_see(viewer(HEIDI), other) and can_write(viewer(HEIDI), other)
    assert can_see(viewer(QUINN), other) and write_right(viewer(QUINN), other) is WriteRight.FORBIDDEN
    assert not can_see(viewer(NOBODY), other) and not can_write(viewer(NOBODY), other)


def test_roles_are_per_channel():
    elsewhere = ChatFacts(CH + 1, ASSIGNED, ANA, frozenset(), True)
    assert not can_see(viewer(ANA), elsewhere)
    assert not can_see(viewer(HEIDI), elsewhere)


def test_offered_chat_is_seen_by_those_offered_and_the_first_reply_claims():
    offered = chat(OFFERED, responsible=HEIDI, offered=(ANA, HEIDI))
    assert can_see(viewer(ANA), offered)
    assert write_right(viewer(ANA), offered) is WriteRight.CLAIMS
    assert not can_see(viewer(BOB), offered)  # not eligible, not offered
    assert write_right(viewer(HEIDI), offered) is WriteRight.CLAIMS


def test_provisional_fallback_responsible_does_not_own_an_offered_chat():
    # Bob is the fallback user (CRM responsible until claimed) but was not offered the chat.
    offered = chat(OFFERED, responsible=BOB, offered=(ANA,))
    assert not can_see(viewer(BOB), offered)
    assert not can_write(viewer(BOB), offered)


def test_claimed_chat_disappears_for_the_other_sellers():
    claimed = chat(ASSIGNED, responsible=ANA)
    assert can_see(viewer(ANA), claimed)
    assert not can_see(viewer(BOB), claimed)


def test_counter_red_for_own_grey_for_others():
    ana_client = chat(responsible=ANA)
    assert counter(viewer(ANA), ana_client) is Counter.RED
    assert counter(viewer(HEIDI), ana_client) is Counter.GREY
    assert counter(viewer(QUINN), ana_client) is Counter.GREY
    assert counter(viewer(BOB), ana_client) is None  # not visible
    assert counter(viewer(ANA), chat(responsible=ANA, unanswered=False)) is None


def test_notify_heads_about_all_messages_makes_every_chat_red_for_heads():
    ana_client = chat(responsible=ANA)
    assert counter(viewer(HEIDI, notify_heads_all=True), ana_client) is Counter.RED
    assert counter(viewer(QUINN, notify_heads_all=True), ana_client) is Counter.GREY


def test_nobody_eligible_is_red_for_heads():
    orphan = chat(UNASSIGNED, responsible=BOB)  # Bob is the fallback user
    assert counter(viewer(HEIDI), orphan) is Counter.RED
    assert counter(viewer(BOB), orphan) is Counter.RED  # and the fallback seller sees their CRM client
    assert counter(viewer(HEIDI), chat(RESOLVING, responsible=None)) is Counter.RED


def test_offered_chat_is_red_for_every_offered_employee():
    offered = chat(OFFERED, responsible=HEIDI, offered=(ANA, BOB))
    assert counter(viewer(ANA), offered) is Counter.RED
    assert counter(viewer(BOB), offered) is Counter.RED
    assert counter(viewer(HEIDI), offered) is Counter.GREY  # head, not offered: someone else's to take
