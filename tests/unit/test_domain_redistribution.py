"""Rules for chats already distributed when eligibility changes, and for one person writing on two
channels while the first chat's CRM record is being created (product.md §3), without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from widget.domain.distribution import (
    FIRST_REPLY,
    NOBODY,
    ROUND_ROBIN,
    Candidate,
    CreatorState,
    Decision,
    creator_verdict,
    redistribute,
)
from widget.domain.roles import HEAD, QC, SELLER
from widget.domain.visibility import ASSIGNED, OFFERED, UNASSIGNED


def reps(n: int) -> list[Candidate]:
    return [Candidate(i, f"Rep {i}", SELLER, True, True) for i in range(1, n + 1)]


def off(pool: list[Candidate], *ids: int) -> list[Candidate]:
    return [replace(c, gets_new_clients=False) if c.employee_id in ids else c for c in pool]


# --- first to answer ------------------------------------------------------------------------------


def test_offer_to_reps_who_all_became_ineligible_goes_to_those_eligible_now():
    pool = off(reps(4), 1, 2)  # 1 and 2 were offered the chat, then switched off
    assert redistribute(FIRST_REPLY, OFFERED, [1, 2], pool, frozenset({1, 2})) == Decision(offer_to=(3, 4))


def test_offer_follows_the_eligible_set_both_ways():
    pool = reps(3)
    assert redistribute(FIRST_REPLY, OFFERED, [1, 2, 3], pool) is None  # nothing changed
    assert redistribute(FIRST_REPLY, OFFERED, [1, 2], pool) == Decision(offer_to=(1, 2, 3))  # 3 switched on
    assert redistribute(FIRST_REPLY, OFFERED, [1, 2, 3], off(pool, 3)) == Decision(offer_to=(1, 2))


def test_offer_with_nobody_eligible_left_goes_to_the_fallback_and_heads():
    pool = [replace(c, is_active=False) for c in reps(2)] + [Candidate(9, "QC", QC, False, True)]
    assert redistribute(FIRST_REPLY, OFFERED, [1, 2], pool, frozenset({1, 2})) is NOBODY


def test_a_rep_who_lost_the_channel_role_is_no_longer_offered():
    pool = [replace(reps(2)[0], role=None), reps(2)[1]]
    assert redistribute(FIRST_REPLY, OFFERED, [1, 2], pool, frozenset({1})) == Decision(offer_to=(2,))


def test_offered_chat_on_a_channel_switched_to_in_turn_stays_offered_while_someone_offered_is_eligible():
    pool = reps(3)
    assert redistribute(ROUND_ROBIN, OFFERED, [1, 2], pool) is None
    assert redistribute(ROUND_ROBIN, OFFERED, [1, 2], off(pool, 1, 2), frozenset({1, 2})) == Decision(assign_to=3)


# --- in turn --------------------------------------------------------------------------------------


def test_unanswered_chat_of_an_assignee_who_became_ineligible_goes_to_the_next_in_turn():
    pool = [replace(c, last_turn=t) for c, t in zip(reps(3), (3, 1, 2), strict=True)]
    pool = [replace(pool[0], is_active=False), *pool[1:]]  # rep 1 had the chat and turned inactive
    assert redistribute(ROUND_ROBIN, ASSIGNED, [1], pool, frozenset({1})) == Decision(assign_to=2)


def test_assignee_never_eligible_here_was_chosen_in_the_crm_and_keeps_the_chat():
    pool = [*reps(2), Candidate(7, "Head", HEAD, False, True)]
    assert redistribute(ROUND_ROBIN, ASSIGNED, [7], pool, frozenset({1})) is None
    assert redistribute(ROUND_ROBIN, ASSIGNED, [1], pool, frozenset()) is None  # still eligible


def test_assigned_chat_whose_assignee_left_with_nobody_eligible_goes_to_the_fallback():
    pool = off(reps(2), 1, 2)
    assert redistribute(ROUND_ROBIN, ASSIGNED, [1], pool, frozenset({1, 2})) is NOBODY


# --- nobody was eligible --------------------------------------------------------------------------


def test_heads_only_chat_is_distributed_once_someone_is_eligible():
    assert redistribute(FIRST_REPLY, UNASSIGNED, [5], reps(2)) == Decision(offer_to=(1, 2))
    assert redistribute(ROUND_ROBIN, UNASSIGNED, [5], reps(2)) == Decision(assign_to=1)
    assert redistribute(FIRST_REPLY, UNASSIGNED, [5], off(reps(2), 1, 2)) is None


# --- who creates the CRM record of a person on two channels ---------------------------------------

PATIENCE = timedelta(minutes=15)


def test_follow_the_chat_whose_record_exists():
    creators = [CreatorState(4, False, False), CreatorState(7, True, False), CreatorState(9, True, False)]
    assert creator_verdict(creators, timedelta(0), PATIENCE).follow == 7


def test_wait_while_the_creation_is_alive_and_patience_lasts():
    verdict = creator_verdict([CreatorState(4, False, True)], timedelta(minutes=14), PATIENCE)
    assert verdict.wait and verdict.follow is None and not verdict.abandon


def test_take_over_at_once_when_every_creation_failed_or_is_gone():
    for creators in ([CreatorState(4, False, False)], []):
        verdict = creator_verdict(creators, timedelta(0), PATIENCE)
        assert not verdict.wait and verdict.follow is None and verdict.abandon == ()


def test_after_patience_a_retrying_creation_is_abandoned_and_this_chat_takes_over():
    verdict = creator_verdict([CreatorState(4, False, True), CreatorState(2, False, False)], PATIENCE, PATIENCE)
    assert verdict == replace(verdict, follow=None, wait=False, abandon=(4,))


def test_a_creation_inside_the_crm_call_right_now_is_awaited_even_after_patience():
    verdict = creator_verdict([CreatorState(4, False, True, held=True)], PATIENCE * 3, PATIENCE)
    assert verdict.wait
