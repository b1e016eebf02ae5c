"""Who has which role, and what an example would change: the names the settings tab shows."""

from __future__ import annotations

from dataclasses import dataclass

from widget.domain.role_roster import NEW_CLIENTS, RoleMove, role_moves, role_roster
from widget.domain.settings import NO_ROLE, RoleChoice


@dataclass(frozen=True)
class Emp:
    id: int
    name: str
    is_active: bool = True
    crm_user_id: str = ""
    is_admin: bool = False


ANA, BRUNO, CARLA, DARIO = Emp(1, "Ana"), Emp(2, "Bruno"), Emp(3, "Carla"), Emp(4, "Dario", is_active=False)
TEAM = [ANA, BRUNO, CARLA, DARIO]
SELLER, HEAD, QC = RoleChoice("seller", True), RoleChoice("head", False), RoleChoice("qc", False)


def test_the_roster_names_active_people_per_role_in_the_teams_order():
    roles = {CARLA.id: SELLER, ANA.id: HEAD, BRUNO.id: RoleChoice("seller", False), DARIO.id: SELLER}
    assert role_roster(roles, TEAM) == {
        "seller": ["Bruno", "Carla"],  # Dario is inactive: his stored role counts for nothing
        "head": ["Ana"],
        "qc": [],
        NEW_CLIENTS: ["Carla"],
    }
    assert role_roster({}, TEAM) == {"seller": [], "head": [], "qc": [], NEW_CLIENTS: []}


def test_moves_group_who_goes_from_which_role_to_which():
    before = {ANA.id: QC, BRUNO.id: QC, CARLA.id: HEAD}
    after = {ANA.id: SELLER, BRUNO.id: SELLER, CARLA.id: HEAD, DARIO.id: NO_ROLE}
    assert role_moves(before, after, TEAM) == [RoleMove(QC, SELLER, (1, 2), ("Ana", "Bruno"))]
    # "Gets new clients" alone is a change too; nobody moved is no move.
    assert role_moves({ANA.id: SELLER}, {ANA.id: RoleChoice("seller", False)}, TEAM) == [
        RoleMove(SELLER, RoleChoice("seller", False), (1,), ("Ana",))
    ]
    assert role_moves(before, before, TEAM) == []
