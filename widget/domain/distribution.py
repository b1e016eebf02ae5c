"""New-client distribution as pluggable policies (product.md §3).

A policy looks at the channel's candidates and returns a decision; the service applies it under a
lock. Later policies (weights, per-rep caps, working hours) are more entries in ``POLICIES`` that
read more candidate facts; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from widget.domain.roles import capabilities
from widget.domain.visibility import ASSIGNED, OFFERED, UNASSIGNED

FIRST_REPLY = "first_reply"
ROUND_ROBIN = "round_robin"


@dataclass(frozen=True)
class Candidate:
    """One employee with a role on the channel, as distribution sees them."""

    employee_id: int
    name: str
    role: str | None
    gets_new_clients: bool
    is_active: bool  # active in the CRM (inactive and deleted users never receive clients)
    # Round robin: the channel's turn number when this employee last received a client (0 = never).
    last_turn: int = 0


def is_eligible(c: Candidate) -> bool:
    """Role seller or head, "Gets new clients" on, active in the CRM."""
    return c.is_active and c.gets_new_clients and capabilities(c.role).gets_new_clients


def eligible(candidates: Sequence[Candidate]) -> list[Candidate]:
    return sorted((c for c in candidates if is_eligible(c)), key=lambda c: c.employee_id)


@dataclass(frozen=True)
class Decision:
    """Exactly one of: one responsible now (``assign_to``), an offer to several (``offer_to``), or
    nobody (both empty: the fallback user becomes responsible and the heads are asked to act)."""

    assign_to: int | None = None
    offer_to: tuple[int, ...] = ()

    @property
    def nobody(self) -> bool:
        return self.assign_to is None and not self.offer_to


NOBODY = Decision()


class DistributionPolicy(Protocol):
    name: str

    def decide(self, candidates: Sequence[Candidate]) -> Decision: ...


class FirstReply:
    """Every eligible employee is offered the chat; the first reply claims it."""

    name = FIRST_REPLY

    def decide(self, candidates: Sequence[Candidate]) -> Decision:
        ids = tuple(c.employee_id for c in eligible(candidates))
        return Decision(offer_to=ids) if ids else NOBODY


class RoundRobin:
    """In turn: the eligible employee who has waited longest since their last client gets the next.

    Ordering by "last turn" (not by a cursor into a list) keeps it fair when the list changes: a rep
    who is switched off is simply skipped, and when switched back on they are next in line once,
    without being flooded to "catch up". With a fixed set of N, any N consecutive clients go to N
    different reps, so after k·N clients each has k.
    """

    name = ROUND_ROBIN

    def decide(self, candidates: Sequence[Candidate]) -> Decision:
        pool = eligible(candidates)
        if not pool:
            return NOBODY
        chosen = min(pool, key=lambda c: (c.last_turn, c.employee_id))
        return Decision(assign_to=chosen.employee_id)


POLICIES: dict[str, DistributionPolicy] = {FIRST_REPLY: FirstReply(), ROUND_ROBIN: RoundRobin()}


def policy_for(mode: str) -> DistributionPolicy:
    try:
        return POLICIES[mode]
    except KeyError:
        raise ValueError(f"unknown distribution mode {mode!r}") from None


# --- when eligibility changes: chats nobody has answered yet -----------------------------------------


def redistribute(
    mode: str,
    assignment: str,
    holders: Sequence[int],
    candidates: Sequence[Candidate],
    lost: frozenset[int] = frozenset(),
) -> Decision | None:
    """What to do with a new client's chat that nobody has answered yet, now that who is eligible
    on its channel changed. ``holders``: the employees it is offered to (``offered``) or assigned to
    (``assigned``); ``lost``: the employees who were eligible before the change and are not now.
    None means "leave it as it is"; ``NOBODY`` means "give it to the fallback user and the heads".

    * Offered (first to answer): the offer always goes to the employees eligible *now*. A rep whose
      toggle went off, who turned inactive or lost the channel no longer has it offered, and one
      switched on sees the chats still waiting for a first answer: an open offer is a standing
      "whoever answers first", not a list frozen when the client wrote.
    * Assigned in turn: only a chat whose assignee is among ``lost`` moves, to the next in turn. An
      assignee who was never eligible here was chosen by somebody in the CRM (the CRM is the source
      of truth for responsibility), so it stays.
    * Nobody was eligible (the heads have it): once somebody is eligible, it is distributed as if the
      client had just written.
    """
    pool = tuple(c.employee_id for c in eligible(candidates))
    if assignment == OFFERED:
        if mode == FIRST_REPLY:
            if set(holders) == set(pool):
                return None
            return Decision(offer_to=pool) if pool else NOBODY
        if set(holders) & set(pool):
            return None  # the channel went "in turn" while offered: it stays offered until taken
        return policy_for(mode).decide(candidates)
    if assignment == ASSIGNED:
        if not set(holders) & lost:
            return None
        return policy_for(mode).decide(candidates)
    if assignment == UNASSIGNED:
        decision = policy_for(mode).decide(candidates)
        return None if decision.nobody else decision
    return None


# --- one person on two channels: who creates the CRM record ------------------------------------------


@dataclass(frozen=True)
class CreatorState:
    """Another chat of the same person that was given the job of creating their CRM record."""

    chat_id: int
    has_crm_record: bool  # its contact (or, for a Bitrix24 lead without contact, its lead) exists
    creating: bool  # its create operation is still pending or running
    held: bool = False  # a worker holds that operation right now (running, lease not expired)


@dataclass(frozen=True)
class CreatorVerdict:
    """Exactly one of: follow ``follow`` (its record exists), ``wait`` for the creators, or take
    over (create this chat's own record) after abandoning the ``abandon`` chats' creations."""

    follow: int | None = None
    wait: bool = False
    abandon: tuple[int, ...] = ()


def creator_verdict(creators: Sequence[CreatorState], waited: timedelta, patience: timedelta) -> CreatorVerdict:
    """A chat of an unknown person whose other chat is creating the CRM record waits for it, but
    not forever (the waiting chat is seen only by the heads): when every creation has failed or is
    gone it creates its own at once, and after ``patience`` it abandons a creation that is still
    retrying — unless a worker is inside the CRM call right now, whose result is then awaited."""
    done = sorted(c.chat_id for c in creators if c.has_crm_record)
    if done:
        return CreatorVerdict(follow=done[0])
    alive = [c for c in creators if c.creating]
    if not alive:
        return CreatorVerdict()
    if waited < patience or any(c.held for c in alive):
        return CreatorVerdict(wait=True)
    return CreatorVerdict(abandon=tuple(sorted(c.chat_id for c in alive)))
