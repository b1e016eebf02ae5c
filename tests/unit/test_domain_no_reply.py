"""Who may press "No reply needed" (product.md §3 and §5): whoever may answer a chat that has a
responsible; on a new client still on offer, only a head — a rep takes a new client by answering it."""

from __future__ import annotations

import pytest

from widget.domain.conversations import may_dismiss
from widget.domain.roles import HEAD, QC, SELLER
from widget.domain.visibility import ASSIGNED, OFFERED, RESOLVING, UNASSIGNED, ChatFacts, Viewer, can_write

CH, OTHER_CH = 7, 8
ANA, BOB, HEIDI, HUGO, QUINN, NOBODY = 1, 2, 3, 4, 5, 6
ROLES = {ANA: SELLER, BOB: SELLER, HEIDI: HEAD, HUGO: HEAD, QUINN: QC}


def viewer(emp: int) -> Viewer:
    return Viewer(emp, {CH: ROLES[emp]} if emp in ROLES else {})


def chat(assignment: str = ASSIGNED, responsible: int | None = ANA, offered: tuple[int, ...] = ()) -> ChatFacts:
    return ChatFacts(CH, assignment, responsible, frozenset(offered), unanswered=True)


# A new client offered to the first who answers: Ana and Bob (reps) and Heidi (a head with "Gets
# new clients" on); Hugo is a head it was not offered to. The fallback admin is the provisional
# responsible meanwhile.
NEW_CLIENT = chat(OFFERED, responsible=NOBODY, offered=(ANA, BOB, HEIDI))


def test_a_rep_may_dismiss_their_own_client_but_not_someone_elses():
    own = chat(ASSIGNED, responsible=ANA)
    assert may_dismiss(viewer(ANA), own)
    assert not may_dismiss(viewer(BOB), own)


def test_a_rep_offered_a_new_client_may_answer_it_but_not_dismiss_it():
    # They could take it by replying; dismissing would clear the red counter of every colleague it
    # was offered to while nobody owns the client.
    assert can_write(viewer(ANA), NEW_CLIENT) and can_write(viewer(BOB), NEW_CLIENT)
    assert not may_dismiss(viewer(ANA), NEW_CLIENT)
    assert not may_dismiss(viewer(BOB), NEW_CLIENT)


@pytest.mark.parametrize("head", [HEIDI, HUGO], ids=["offered to the head", "not offered to the head"])
def test_a_head_may_dismiss_a_new_client_on_offer(head: int):
    assert may_dismiss(viewer(head), NEW_CLIENT)


def test_quality_control_and_employees_without_a_role_never_dismiss():
    for facts in (NEW_CLIENT, chat(ASSIGNED), chat(UNASSIGNED, responsible=NOBODY)):
        assert not may_dismiss(viewer(QUINN), facts)
        assert not may_dismiss(viewer(NOBODY), facts)


def test_nobody_eligible_or_not_yet_resolved_is_for_the_heads():
    for facts in (chat(UNASSIGNED, responsible=NOBODY), chat(RESOLVING, responsible=None)):
        assert may_dismiss(viewer(HEIDI), facts)
        assert not may_dismiss(viewer(ANA), facts)


def test_the_role_on_the_chats_channel_decides():
    head_elsewhere = Viewer(HEIDI, {OTHER_CH: HEAD, CH: SELLER})
    assert not may_dismiss(head_elsewhere, chat(OFFERED, responsible=NOBODY, offered=(HEIDI,)))
    assert may_dismiss(Viewer(HEIDI, {OTHER_CH: SELLER, CH: HEAD}), NEW_CLIENT)


def test_a_claimed_client_is_dismissed_by_its_new_owner_and_the_heads_only():
    claimed = chat(ASSIGNED, responsible=BOB)  # Bob answered first
    assert may_dismiss(viewer(BOB), claimed) and may_dismiss(viewer(HUGO), claimed)
    assert not may_dismiss(viewer(ANA), claimed)
