"""The settings rules, without Flask or a database: what an admin may enter and what it means."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from widget.domain.channels import check_new_channel, normalise_address, pick_test_message_channel
from widget.domain.settings import (
    CLASSIC_SALES,
    SHOP_SUPPORT,
    SINGLE_PERSON,
    AdvancedSetup,
    ChannelSetup,
    CrmFacts,
    RoleChoice,
    apply_preset,
    check_advanced,
    check_setup,
    default_setup,
    effective_target,
    merge_roles,
    plan_roles,
    setup_warnings,
)


@dataclass(frozen=True)
class Emp:
    id: int
    name: str
    is_active: bool = True
    is_admin: bool = False
    crm_user_id: str = ""


@dataclass(frozen=True)
class St:
    crm_stage_id: str
    kind: str = "open"
    is_active: bool = True


@dataclass(frozen=True)
class Pipe:
    entity: str
    crm_pipeline_id: str
    is_main: bool = False
    is_active: bool = True
    stages: tuple[St, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Ch:
    id: int
    transport: str
    address: str
    name: str = "channel"
    is_enabled: bool = True


ANA, BRUNO, CARLA, DARIO = Emp(1, "Ana", is_admin=True), Emp(2, "Bruno"), Emp(3, "Carla"), Emp(4, "Dario", False)
KOMMO_PIPES = (
    Pipe("lead", "1", True, stages=(St("10", "incoming"), St("11"), St("142", "won"), St("143", "lost"))),
    Pipe("lead", "2", stages=(St("20", "incoming"), St("21"))),
    Pipe("lead", "3", is_active=False, stages=(St("30", is_active=False),)),
)


def kommo(employees=(ANA, BRUNO, CARLA, DARIO), pipes=KOMMO_PIPES) -> CrmFacts:
    return CrmFacts("kommo", "classic", {e.id: e for e in employees}, pipes)


def bitrix(mode: str = "classic") -> CrmFacts:
    pipes = (
        Pipe("deal", "0", True, stages=(St("NEW"), St("WON", "won"))),
        Pipe("deal", "1", stages=(St("C1:NEW"),)),
        Pipe("lead", "0", True, stages=(St("NEW"),)),
    )
    return CrmFacts("bitrix24", mode, {ANA.id: ANA, BRUNO.id: BRUNO}, pipes)


def setup(**kw) -> ChannelSetup:
    base = {
        "new_client_entity": "lead",
        "pipeline_id": "1",
        "stage_id": "11",
        "distribution": "first_reply",
        "roles": {},
    }
    base.update(kw)
    return ChannelSetup(**base)


def codes(problems) -> dict[str, str]:
    return {p.field: p.code for p in problems}


# --- roles -------------------------------------------------------------------------------------


def test_quality_control_cannot_get_new_clients():
    problems = check_setup(setup(roles={BRUNO.id: RoleChoice("qc", True)}), kommo(), {})
    assert codes(problems) == {"roles.2.gets_new_clients": "qc_cannot_get_new_clients"}


def test_without_a_role_nobody_gets_new_clients():
    problems = check_setup(setup(roles={BRUNO.id: RoleChoice(None, True)}), kommo(), {})
    assert codes(problems) == {"roles.2.gets_new_clients": "no_role_cannot_get_new_clients"}


def test_inactive_employee_cannot_be_given_a_role_but_keeps_the_stored_one():
    assert codes(check_setup(setup(roles={DARIO.id: RoleChoice("seller")}), kommo(), {})) == {
        "roles.4.role": "inactive_employee"
    }
    stored = {DARIO.id: RoleChoice("head", True)}
    # Sending back exactly what is stored is not a change, so it is accepted...
    assert check_setup(setup(roles={DARIO.id: RoleChoice("head", True)}), kommo(), stored) == []
    # ...and the stored role survives a save that does not (or cannot) mention them.
    merged = merge_roles(stored, {DARIO.id: RoleChoice(None), BRUNO.id: RoleChoice("seller", True)}, kommo())
    assert merged == {DARIO.id: RoleChoice("head", True), BRUNO.id: RoleChoice("seller", True)}


def test_employees_of_another_account_and_unknown_roles_are_refused():
    problems = check_setup(setup(roles={999: RoleChoice("head"), BRUNO.id: RoleChoice("boss")}), kommo(), {})
    assert codes(problems) == {"roles.2.role": "invalid_choice", "roles.999": "unknown_employee"}


def test_every_problem_is_reported_at_once_with_its_field():
    bad = setup(
        pipeline_id="2",
        stage_id="11",  # a stage of pipeline 1
        distribution="lottery",
        roles={BRUNO.id: RoleChoice("qc", True), CARLA.id: RoleChoice(None, True)},
    )
    assert codes(check_setup(bad, kommo(), {})) == {
        "stage": "unknown",
        "distribution": "invalid_choice",
        "roles.2.gets_new_clients": "qc_cannot_get_new_clients",
        "roles.3.gets_new_clients": "no_role_cannot_get_new_clients",
    }


# --- what a new client creates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pipeline", "stage", "expected"),
    [
        ("1", "10", {}),  # "Incoming leads" is a valid start in Kommo
        ("1", "11", {}),
        (None, None, {"pipeline": "required"}),
        ("1", None, {"stage": "required"}),
        ("9", "10", {"pipeline": "unknown"}),
        ("3", "30", {"pipeline": "vanished"}),
        ("1", "142", {"stage": "closed_stage"}),
        ("1", "20", {"stage": "unknown"}),
    ],
)
def test_kommo_pipeline_and_stage(pipeline, stage, expected):
    assert codes(check_setup(setup(pipeline_id=pipeline, stage_id=stage), kommo(), {})) == expected


def test_a_stage_removed_from_the_crm_is_flagged():
    pipes = (Pipe("lead", "1", True, stages=(St("10", "incoming"), St("11", is_active=False))),)
    assert codes(check_setup(setup(stage_id="11"), kommo(pipes=pipes), {})) == {"stage": "vanished"}


def test_vanished_target_falls_back_to_the_main_pipelines_first_stage():
    assert effective_target(kommo(), setup(pipeline_id="2", stage_id="21")) == ("2", "21", False)
    assert effective_target(kommo(), setup(pipeline_id="3", stage_id="30")) == ("1", "11", True)


def test_bitrix24_offers_deal_or_lead_but_no_lead_in_simple_crm():
    deal = setup(new_client_entity="deal", pipeline_id="1", stage_id="C1:NEW")
    assert check_setup(deal, bitrix(), {}) == []
    lead = setup(new_client_entity="lead", pipeline_id="0", stage_id="NEW")
    assert check_setup(lead, bitrix(), {}) == []
    assert codes(check_setup(lead, bitrix("simple"), {})) == {"new_client_entity": "leads_off_in_simple_crm"}
    # Kommo only knows leads.
    assert codes(check_setup(setup(new_client_entity="deal"), kommo(), {})) == {"new_client_entity": "invalid_choice"}


def test_defaults_pair_kommo_incoming_leads_with_first_to_answer():
    d = default_setup(kommo())
    assert (d.new_client_entity, d.pipeline_id, d.stage_id, d.distribution) == ("lead", "1", "10", "first_reply")
    b = default_setup(bitrix())
    assert (b.new_client_entity, b.pipeline_id, b.stage_id) == ("deal", "0", "NEW")


def test_round_robin_with_incoming_leads_warns_but_saves():
    s = setup(stage_id="10", distribution="round_robin", roles={BRUNO.id: RoleChoice("seller", True)})
    assert check_setup(s, kommo(), {}) == []
    assert codes(setup_warnings(s, kommo(), s.roles)) == {"distribution": "incoming_pairs_with_first_reply"}


def test_warnings_when_nobody_sees_or_nobody_gets_new_clients():
    assert codes(setup_warnings(setup(), kommo(), {})) == {"roles": "nobody_sees_chats"}
    only_qc = {BRUNO.id: RoleChoice("qc")}
    assert codes(setup_warnings(setup(), kommo(), only_qc)) == {"roles": "nobody_gets_new_clients"}
    # A role kept by an inactive employee does not count.
    assert codes(setup_warnings(setup(), kommo(), {DARIO.id: RoleChoice("head", True)})) == {
        "roles": "nobody_sees_chats"
    }


# --- saving only what changed -------------------------------------------------------------------------


def test_role_plan_writes_only_differences_and_never_deletes():
    stored = {1: RoleChoice("head", True), 2: RoleChoice("seller", True)}
    wanted = {1: RoleChoice("head", True), 2: RoleChoice(None), 3: RoleChoice("qc"), 4: RoleChoice(None)}
    plan = plan_roles(stored, wanted)
    assert plan.insert == {3: RoleChoice("qc")}  # no row for someone who still has no role
    assert plan.update == {2: RoleChoice(None)}  # "no role" is kept as a row: history stays
    assert not plan_roles(stored, stored).changed


# --- presets -------------------------------------------------------------------------------------------


def test_classic_sales_department():
    result = apply_preset(CLASSIC_SALES, setup(), [ANA, BRUNO, CARLA, DARIO], ANA.id)
    assert result.distribution == "round_robin"
    assert result.roles == {
        ANA.id: RoleChoice("head", False),  # the admin testing the integration: Head, as recommended
        BRUNO.id: RoleChoice("seller", True),
        CARLA.id: RoleChoice("seller", True),
    }
    assert (result.pipeline_id, result.stage_id) == ("1", "11")  # the target is not the preset's business


def test_online_shop_or_support():
    result = apply_preset(SHOP_SUPPORT, setup(distribution="round_robin"), [ANA, BRUNO, DARIO], ANA.id)
    assert result.distribution == "first_reply"
    assert result.roles == {ANA.id: RoleChoice("head", True), BRUNO.id: RoleChoice("head", True)}


def test_single_person_answers_and_an_inactive_employee_is_left_alone():
    start = setup(roles={BRUNO.id: RoleChoice("seller", True), DARIO.id: RoleChoice("qc")})
    result = apply_preset(SINGLE_PERSON, start, [ANA, BRUNO, CARLA, DARIO], ANA.id)
    assert result.roles == {
        ANA.id: RoleChoice("head", True),
        BRUNO.id: RoleChoice(None),
        CARLA.id: RoleChoice(None),
        DARIO.id: RoleChoice("qc"),
    }
    # Applied by someone who is not a CRM employee: the first active CRM admin is the one.
    assert apply_preset(SINGLE_PERSON, setup(), [BRUNO, ANA], None).roles[ANA.id] == RoleChoice("head", True)
    # Every preset passes validation as it stands.
    for key in (CLASSIC_SALES, SHOP_SUPPORT, SINGLE_PERSON):
        assert check_setup(apply_preset(key, start, [ANA, BRUNO, CARLA, DARIO], ANA.id), kommo(), start.roles) == []


def test_unknown_preset_is_an_error():
    with pytest.raises(ValueError):
        apply_preset("chaos", setup(), [ANA], ANA.id)


# --- channels -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "raw", "expected"),
    [
        ("whatsapp", "+34 600-123-456", "+34600123456"),
        ("whatsapp", "0034 (600) 123 456", "+34600123456"),
        ("waba", "+1 202.555.0143", "+12025550143"),
        ("whatsapp", "600123456", None),  # no country code
        ("whatsapp", "+0 600 123 456", None),
        ("whatsapp", "+34 600 12345678901234", None),  # longer than E.164 allows
        ("whatsapp", "+34 six hundred", None),
        ("waba", "+١٢٣٤٥٦٧٨٩", None),  # non-ASCII digits are not a phone number we can dial
        ("telegram", "@Acme_Support_Bot", "@acme_support_bot"),
        ("telegram", "https://t.me/acme_support_bot", "@acme_support_bot"),
        ("telegram", "+44 7700 900123", "+447700900123"),
        ("telegram", "@abc", None),  # too short
        ("telegram", "@1acme", None),
        ("telegram", "@acme_bot_", None),
        ("instagram", "@Acme.Shop", "@acme.shop"),
        ("instagram", "instagram.com/acme_shop/", "@acme_shop"),
        ("instagram", "@.acme", None),
        ("instagram", "@acme..shop", None),
        ("instagram", "@acme shop", None),
        ("fax", "+34600123456", None),
    ],
)
def test_addresses(transport, raw, expected):
    assert normalise_address(transport, raw) == expected


def test_new_channel_reports_every_problem_and_duplicates():
    new, problems = check_new_channel("pigeon", "   ", "", [])
    assert new is None
    assert codes(problems) == {"transport": "invalid_choice", "name": "required", "address": "required"}

    existing = [Ch(1, "whatsapp", "+34600123456", "Sales"), Ch(2, "telegram", "@acme_bot", "Old bot", False)]
    _, problems = check_new_channel("whatsapp", "Again", "+34 600 123 456", existing)
    assert [(p.code, dict(p.params)) for p in problems] == [("duplicate_address", {"name": "Sales"})]
    _, problems = check_new_channel("telegram", "Again", "@ACME_bot", existing)
    assert codes(problems) == {"address": "duplicate_disabled_address"}
    # The same number on another messenger is another channel.
    new, problems = check_new_channel("waba", "  Sales\tWABA ", "+34600123456", existing)
    assert problems == [] and new is not None
    assert (new.transport, new.name, new.address) == ("waba", "Sales WABA", "+34600123456")


def test_channel_name_length():
    _, problems = check_new_channel("whatsapp", "x" * 121, "+34600123456", [])
    assert codes(problems) == {"name": "too_long"}


def test_trial_message_goes_to_the_first_enabled_whatsapp_waba_or_telegram_channel():
    channels = [
        Ch(1, "instagram", "@shop"),
        Ch(2, "whatsapp", "+1", is_enabled=False),
        Ch(3, "telegram", "@bot"),
        Ch(4, "waba", "+2"),
    ]
    picked = pick_test_message_channel(channels)
    assert picked is not None and picked.id == 3
    assert pick_test_message_channel([Ch(1, "instagram", "@shop")]) is None


def test_advanced_choices_must_exist_and_be_usable():
    channels = [Ch(1, "whatsapp", "+1"), Ch(2, "telegram", "@b", is_enabled=False)]
    employees = {ANA.id: ANA, DARIO.id: DARIO}
    assert check_advanced(AdvancedSetup(1, True, ANA.id), channels, employees) == []
    assert check_advanced(AdvancedSetup(None, False, None), channels, employees) == []
    assert codes(check_advanced(AdvancedSetup(2, False, DARIO.id), channels, employees)) == {
        "default_channel": "disabled_channel",
        "fallback_employee": "inactive_employee",
    }
    assert codes(check_advanced(AdvancedSetup(99, False, 99), channels, employees)) == {
        "default_channel": "unknown",
        "fallback_employee": "unknown",
    }
