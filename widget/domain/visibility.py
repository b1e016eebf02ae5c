"""Who sees a chat, who may answer it, and how its unanswered counter looks to whom.

Product.md §1 (roles), §3 (first-to-answer offers, nobody eligible) and §5 (counters). Pure rules
over plain facts, so the chat list query, the send box and the counters all agree.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from widget.domain.roles import capabilities

# Where a chat stands in new-client distribution.
RESOLVING = "resolving"  # the CRM has not been asked yet who this client is
ASSIGNED = "assigned"  # a responsible is known: a known client, a client given in turn, or a claimed one
OFFERED = "offered"  # first to answer: offered to the eligible employees, nobody has replied yet
UNASSIGNED = "unassigned"  # nobody was eligible: the fallback user is responsible, the heads must act

ASSIGNMENTS = (RESOLVING, ASSIGNED, OFFERED, UNASSIGNED)


@dataclass(frozen=True)
class ChatFacts:
    channel_id: int
    assignment: str
    responsible_employee_id: int | None
    offered_to: frozenset[int] = frozenset()
    unanswered: bool = False


@dataclass(frozen=True)
class Viewer:
    employee_id: int
    roles: Mapping[int, str | None] = field(default_factory=dict)  # channel id -> role
    notify_heads_all: bool = False  # "notify heads about all messages" (Advanced tab)

    def role_on(self, channel_id: int) -> str | None:
        return self.roles.get(channel_id)


class WriteRight(enum.Enum):
    FORBIDDEN = "forbidden"
    ALLOWED = "allowed"
    CLAIMS = "claims"  # allowed, and the reply makes the writer responsible (first to answer)


class Counter(enum.Enum):
    RED = "red"  # this employee should act
    GREY = "grey"  # visible, but someone else's to answer


def _is_own(viewer: Viewer, chat: ChatFacts) -> bool:
    # While a chat is offered, its CRM responsible is only the provisional fallback user: it is
    # nobody's own until somebody claims it.
    return chat.assignment != OFFERED and chat.responsible_employee_id == viewer.employee_id


def _is_offered_to(viewer: Viewer, chat: ChatFacts) -> bool:
    return chat.assignment == OFFERED and viewer.employee_id in chat.offered_to


def should_act(viewer: Viewer, chat: ChatFacts) -> bool:
    """The chat is this employee's to answer: their client, or a new client offered to them."""
    return _is_own(viewer, chat) or _is_offered_to(viewer, chat)


def can_see(viewer: Viewer, chat: ChatFacts) -> bool:
    caps = capabilities(viewer.role_on(chat.channel_id))
    if caps.see_all:
        return True
    if caps.see_own:
        return should_act(viewer, chat)
    return False


def may_learn_taker(viewer: Viewer, chat: ChatFacts) -> bool:
    """May "already taken by NAME" be said to this employee about a chat they cannot see?

    Only to colleagues on the chat's channel: they are the ones a new client is offered to, so
    losing the race is theirs to hear about. Anyone else gets the plain refusal of a chat they
    cannot see; chat ids are sequential, and naming the taker would map who holds which client."""
    return viewer.role_on(chat.channel_id) is not None


def write_right(viewer: Viewer, chat: ChatFacts) -> WriteRight:
    """What a reply from this employee would do. The server enforces this on every send."""
    caps = capabilities(viewer.role_on(chat.channel_id))
    if caps.write_any or (caps.write_own and should_act(viewer, chat)):
        # The first reply to an offered chat claims it, whoever of those allowed to write sends it.
        return WriteRight.CLAIMS if chat.assignment == OFFERED else WriteRight.ALLOWED
    return WriteRight.FORBIDDEN


def can_write(viewer: Viewer, chat: ChatFacts) -> bool:
    return write_right(viewer, chat) is not WriteRight.FORBIDDEN


def counter(viewer: Viewer, chat: ChatFacts) -> Counter | None:
    """The unanswered marker this employee sees on the chat, or None (answered or invisible)."""
    if not chat.unanswered or not can_see(viewer, chat):
        return None
    caps = capabilities(viewer.role_on(chat.channel_id))
    if not caps.writes_anything:
        return Counter.GREY  # quality control can only watch
    if should_act(viewer, chat):
        return Counter.RED
    if caps.see_all:
        if viewer.notify_heads_all:
            return Counter.RED
        # Nobody else will answer: nobody was eligible, or the CRM has not told us who is responsible yet.
        if chat.assignment in (UNASSIGNED, RESOLVING) or chat.responsible_employee_id is None:
            return Counter.RED
    return Counter.GREY
