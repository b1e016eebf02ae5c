"""Per-channel roles expressed as capabilities (product.md §1).

A role is only a name for a set of capabilities, so a future role ("supervisor", "trainee") is one
more entry in ``ROLES`` and every rule that reads capabilities keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass

SELLER = "seller"
HEAD = "head"
QC = "qc"


@dataclass(frozen=True)
class Capabilities:
    see_all: bool = False  # every chat of the channel
    see_own: bool = False  # chats whose client they are responsible for, plus new clients offered to them
    write_any: bool = False  # answer any chat they see
    write_own: bool = False  # answer only chats they are responsible for (or claim an offered one)
    gets_new_clients: bool = False  # may have "Gets new clients" switched on

    @property
    def sees_anything(self) -> bool:
        return self.see_all or self.see_own

    @property
    def writes_anything(self) -> bool:
        return self.write_any or self.write_own


NO_ROLE = Capabilities()

ROLES: dict[str, Capabilities] = {
    SELLER: Capabilities(see_own=True, write_own=True, gets_new_clients=True),
    HEAD: Capabilities(see_all=True, write_any=True, gets_new_clients=True),
    # Quality control reads everything and can write nothing, so "Gets new clients" makes no sense.
    QC: Capabilities(see_all=True),
}


def capabilities(role: str | None) -> Capabilities:
    """Capabilities of a stored role; an unknown or absent role grants nothing."""
    if role is None:
        return NO_ROLE
    return ROLES.get(role, NO_ROLE)


def may_get_new_clients(role: str | None) -> bool:
    """Whether the "Gets new clients" toggle can be on for this role (the settings page disables it)."""
    return capabilities(role).gets_new_clients
