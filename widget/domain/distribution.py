"""New-client distribution as pluggable policies (product.md §3).

A policy looks at the channel's candidates and returns a decision; the service applies it under a
lock. Later policies (weights, per-rep caps, working hours) are more entries in ``POLICIES`` that
read more candidate facts; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from widget.domain.roles import capabilities

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
