"""Rules of the "CRM integration" settings (product.md §1-4): roles as capabilities, what makes a
channel setup valid, the example setups of the help text, and the account-wide "Advanced" options.
Pure: no Flask, no SQL. Problems are codes with a field key; the web layer words them in the
reader's language.

The rules of a channel itself (messengers, addresses, names, the test message's channel) are in
``widget.domain.channels``, problems in ``widget.domain.problems``, and who takes part in new-client
distribution in ``widget.domain.distribution``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from typing import Protocol

from widget.domain import roles as _roles
from widget.domain.channels import ChannelLike
from widget.domain.crm import ENTITY_DEAL, ENTITY_LEAD, STAGE_INCOMING, STAGE_OPEN
from widget.domain.distribution import FIRST_REPLY, POLICIES, ROUND_ROBIN, Candidate, is_eligible
from widget.domain.problems import Problem
from widget.domain.roles import HEAD, QC, SELLER, may_get_new_clients

# --- roles -------------------------------------------------------------------------------------
# Roles are capability sets defined once, in widget.domain.roles; settings only validate choices.

ROLES = tuple(_roles.ROLES)


# --- the CRM integration tab of one channel ------------------------------------------------------

KOMMO, BITRIX24 = "kommo", "bitrix24"
DISTRIBUTIONS = tuple(POLICIES)  # first_reply, round_robin: pluggable policies
# A new lead or deal starts in an open stage (or Kommo's "Incoming leads"), never a closed one.
STARTING_STAGE_KINDS = (STAGE_INCOMING, STAGE_OPEN)


class EmployeeLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def crm_user_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def is_admin(self) -> bool: ...


class StageLike(Protocol):
    @property
    def crm_stage_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def is_active(self) -> bool: ...


class PipelineLike(Protocol):
    @property
    def entity(self) -> str: ...
    @property
    def crm_pipeline_id(self) -> str: ...
    @property
    def is_main(self) -> bool: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def stages(self) -> Sequence[StageLike]: ...


@dataclass(frozen=True)
class RoleChoice:
    role: str | None = None
    gets_new_clients: bool = False


NO_ROLE = RoleChoice()


@dataclass(frozen=True)
class ChannelSetup:
    """The settings of one channel, as stored or as the form holds them (unsaved)."""

    new_client_entity: str
    pipeline_id: str | None  # CRM pipeline id (Kommo pipeline, Bitrix24 category / lead directory)
    stage_id: str | None
    distribution: str
    roles: Mapping[int, RoleChoice] = dc_field(default_factory=dict)  # employee id -> choice


@dataclass(frozen=True)
class CrmFacts:
    """What the CRM told us at the last refresh, as the rules need it."""

    crm: str
    crm_mode: str  # Bitrix24 "classic" / "simple" (no leads)
    employees: Mapping[int, EmployeeLike]
    pipelines: Sequence[PipelineLike]

    def entities(self) -> tuple[str, ...]:
        if self.crm == KOMMO:
            return (ENTITY_LEAD,)
        if self.crm_mode == "simple":
            return (ENTITY_DEAL,)
        return (ENTITY_DEAL, ENTITY_LEAD)

    def pipelines_of(self, entity: str) -> list[PipelineLike]:
        return [p for p in self.pipelines if p.entity == entity]

    def pipeline(self, entity: str, crm_pipeline_id: str | None) -> PipelineLike | None:
        for p in self.pipelines:
            if p.entity == entity and p.crm_pipeline_id == crm_pipeline_id:
                return p
        return None


def _first_stage(pipe: PipelineLike, prefer_incoming: bool) -> StageLike | None:
    usable = [s for s in pipe.stages if s.is_active and s.kind in STARTING_STAGE_KINDS]
    if prefer_incoming:
        incoming = [s for s in usable if s.kind == STAGE_INCOMING]
        if incoming:
            return incoming[0]
    opened = [s for s in usable if s.kind == STAGE_OPEN]
    found = opened or usable
    return found[0] if found else None


def main_pipeline(facts: CrmFacts, entity: str) -> PipelineLike | None:
    active = [p for p in facts.pipelines_of(entity) if p.is_active]
    found = [p for p in active if p.is_main] or active
    return found[0] if found else None


def default_setup(facts: CrmFacts) -> ChannelSetup:
    """What a channel nobody configured yet starts with: the main pipeline, "first to answer", and
    in Kommo the "Incoming leads" stage that pairs with it (product.md §3); nobody has a role."""
    entity = facts.entities()[0]
    pipe = main_pipeline(facts, entity)
    stage = _first_stage(pipe, prefer_incoming=facts.crm == KOMMO) if pipe else None
    return ChannelSetup(
        new_client_entity=entity,
        pipeline_id=pipe.crm_pipeline_id if pipe else None,
        stage_id=stage.crm_stage_id if stage else None,
        distribution=FIRST_REPLY,
    )


def check_target(facts: CrmFacts, entity: str, pipeline_id: str | None, stage_id: str | None) -> list[Problem]:
    """Where a new client's lead/deal goes: the entity is offered, the pipeline and stage exist
    in the CRM, belong together, and can hold a new record."""
    if entity not in (ENTITY_LEAD, ENTITY_DEAL) or (facts.crm == KOMMO and entity != ENTITY_LEAD):
        return [Problem("new_client_entity", "invalid_choice")]
    if entity not in facts.entities():
        return [Problem("new_client_entity", "leads_off_in_simple_crm")]
    candidates = facts.pipelines_of(entity)
    if not candidates and facts.crm == BITRIX24 and entity == ENTITY_LEAD:
        return []  # no lead statuses synced: the portal puts a new lead in its first status
    if not pipeline_id:
        return [Problem("pipeline", "required" if candidates else "no_pipelines")]
    pipe = facts.pipeline(entity, pipeline_id)
    if pipe is None:
        return [Problem("pipeline", "unknown")]
    if not pipe.is_active:
        return [Problem("pipeline", "vanished")]
    if not stage_id:
        return [Problem("stage", "required")]
    stage = next((s for s in pipe.stages if s.crm_stage_id == stage_id), None)
    if stage is None:
        return [Problem("stage", "unknown")]
    if not stage.is_active:
        return [Problem("stage", "vanished")]
    if stage.kind not in STARTING_STAGE_KINDS:
        return [Problem("stage", "closed_stage")]
    return []


def merge_roles(
    stored: Mapping[int, RoleChoice], submitted: Mapping[int, RoleChoice], facts: CrmFacts
) -> dict[int, RoleChoice]:
    """The roles after a save: what was submitted for active employees over what was stored.
    An employee the form did not mention keeps their role; inactive employees keep theirs, so a
    user who comes back to the CRM gets their role back (product.md Terms)."""
    merged = dict(stored)
    for emp_id, choice in submitted.items():
        emp = facts.employees.get(emp_id)
        if emp is not None and emp.is_active:
            merged[emp_id] = choice
    return merged


def check_setup(setup: ChannelSetup, facts: CrmFacts, stored_roles: Mapping[int, RoleChoice]) -> list[Problem]:
    """Every problem of a channel setup at once, each with its field key."""
    problems = check_target(facts, setup.new_client_entity, setup.pipeline_id, setup.stage_id)
    if setup.distribution not in DISTRIBUTIONS:
        problems.append(Problem("distribution", "invalid_choice"))
    for emp_id, choice in sorted(setup.roles.items()):
        key = f"roles.{emp_id}"
        emp = facts.employees.get(emp_id)
        if emp is None:
            problems.append(Problem(key, "unknown_employee"))
            continue
        if choice.role is not None and choice.role not in ROLES:
            problems.append(Problem(f"{key}.role", "invalid_choice", {"name": emp.name}))
            continue
        if not emp.is_active:
            if choice != stored_roles.get(emp_id, NO_ROLE):
                problems.append(Problem(f"{key}.role", "inactive_employee", {"name": emp.name}))
            continue
        if choice.gets_new_clients and not may_get_new_clients(choice.role):
            code = "qc_cannot_get_new_clients" if choice.role == QC else "no_role_cannot_get_new_clients"
            problems.append(Problem(f"{key}.gets_new_clients", code, {"name": emp.name}))
    return problems


def setup_warnings(setup: ChannelSetup, facts: CrmFacts, roles: Mapping[int, RoleChoice]) -> list[Problem]:
    """Valid but probably not meant: shown after a save, never blocking it."""
    warnings: list[Problem] = []
    active = {i: c for i, c in roles.items() if (e := facts.employees.get(i)) is not None and e.is_active}
    if not any(c.role for c in active.values()):
        warnings.append(Problem("roles", "nobody_sees_chats"))
    elif not any(
        is_eligible(Candidate(i, facts.employees[i].name, c.role, c.gets_new_clients, is_active=True))
        for i, c in active.items()
    ):
        warnings.append(Problem("roles", "nobody_gets_new_clients"))
    if facts.crm == KOMMO and setup.distribution == ROUND_ROBIN:
        pipe = facts.pipeline(setup.new_client_entity, setup.pipeline_id)
        stage = next((s for s in pipe.stages if s.crm_stage_id == setup.stage_id), None) if pipe else None
        if stage is not None and stage.kind == STAGE_INCOMING:
            warnings.append(Problem("distribution", "incoming_pairs_with_first_reply"))
    return warnings


def effective_target(facts: CrmFacts, setup: ChannelSetup) -> tuple[str | None, str | None, bool]:
    """Where a new client actually goes: the chosen pipeline and stage, or — when they vanished
    from the CRM — the main pipeline's first stage (product.md §2). The flag says it fell back."""
    if not check_target(facts, setup.new_client_entity, setup.pipeline_id, setup.stage_id):
        return setup.pipeline_id, setup.stage_id, False
    pipe = main_pipeline(facts, setup.new_client_entity)
    stage = _first_stage(pipe, prefer_incoming=False) if pipe else None
    return (pipe.crm_pipeline_id if pipe else None), (stage.crm_stage_id if stage else None), True


@dataclass(frozen=True)
class RolePlan:
    """Rows to write so the stored roles equal the wanted ones; empty when nothing changed.

    Rows are never deleted: "no role" is a row with ``role=None``, which keeps the employee's
    distribution history if they get a role back."""

    insert: dict[int, RoleChoice]
    update: dict[int, RoleChoice]

    @property
    def changed(self) -> bool:
        return bool(self.insert or self.update)


def plan_roles(stored: Mapping[int, RoleChoice], wanted: Mapping[int, RoleChoice]) -> RolePlan:
    insert: dict[int, RoleChoice] = {}
    update: dict[int, RoleChoice] = {}
    for emp_id, choice in wanted.items():
        if emp_id not in stored:
            if choice != NO_ROLE:
                insert[emp_id] = choice
        elif stored[emp_id] != choice:
            update[emp_id] = choice
    return RolePlan(insert, update)


# --- example setups from the help text ----------------------------------------------------------

CLASSIC_SALES = "classic_sales"  # "departamento de ventas clásico"
SHOP_SUPPORT = "shop_support"  # "tiendas online y los departamentos de soporte"
SINGLE_PERSON = "single_person"  # "sólo un vendedor responde a los mensajes del canal"
PRESETS = (CLASSIC_SALES, SHOP_SUPPORT, SINGLE_PERSON)


def _who_tests(employees: Sequence[EmployeeLike], acting_employee_id: int | None) -> EmployeeLike | None:
    """The admin configuring the integration, else the first active CRM admin, else anyone active."""
    active = [e for e in employees if e.is_active]
    me = next((e for e in active if e.id == acting_employee_id), None)
    return me or next((e for e in active if e.is_admin), None) or (active[0] if active else None)


def apply_preset(
    key: str, setup: ChannelSetup, employees: Sequence[EmployeeLike], acting_employee_id: int | None
) -> ChannelSetup:
    """The example setup applied to the (unsaved) form: every active employee gets the preset's
    role; inactive employees are left as they are. Pipeline and stage are not touched.

    * classic sales department — each rep sees only their own clients; new clients in turn. The
      admin testing the integration is made Head, as the help text recommends.
    * online shop / support — everyone sees every chat and the first who can, answers.
    * a single person answers — that person is Head, so they see every message even when the CRM
      fails; everybody else has no role.
    """
    if key not in PRESETS:
        raise ValueError(f"unknown preset {key!r}")
    tester = _who_tests(employees, acting_employee_id)
    roles = dict(setup.roles)
    distribution = FIRST_REPLY
    for emp in employees:
        if not emp.is_active:
            continue
        if key == CLASSIC_SALES:
            is_tester = tester is not None and emp.id == tester.id
            roles[emp.id] = RoleChoice(HEAD, False) if is_tester else RoleChoice(SELLER, True)
        elif key == SHOP_SUPPORT:
            roles[emp.id] = RoleChoice(HEAD, True)
        else:
            roles[emp.id] = RoleChoice(HEAD, True) if tester is not None and emp.id == tester.id else NO_ROLE
    if key == CLASSIC_SALES:
        distribution = ROUND_ROBIN
    return replace(setup, distribution=distribution, roles=roles)


# --- the "Advanced" tab (account-wide) ----------------------------------------------------------


@dataclass(frozen=True)
class AdvancedSetup:
    default_channel_id: int | None
    notify_heads_all: bool
    fallback_employee_id: int | None  # None = the admin who installed


def check_advanced(
    setup: AdvancedSetup, channels: Iterable[ChannelLike], employees: Mapping[int, EmployeeLike]
) -> list[Problem]:
    problems: list[Problem] = []
    if setup.default_channel_id is not None:
        ch = next((c for c in channels if c.id == setup.default_channel_id), None)
        if ch is None:
            problems.append(Problem("default_channel", "unknown"))
        elif not ch.is_enabled:
            problems.append(Problem("default_channel", "disabled_channel"))
    if setup.fallback_employee_id is not None:
        emp = employees.get(setup.fallback_employee_id)
        if emp is None:
            problems.append(Problem("fallback_employee", "unknown"))
        elif not emp.is_active:
            problems.append(Problem("fallback_employee", "inactive_employee", {"name": emp.name}))
    return problems
