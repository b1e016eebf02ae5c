"""Client identity, what a new client creates (product.md §2), and the gateway payload parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from widget.domain.conversations import PipelineInfo, StageInfo, client_key, normalize_phone, plan_new_client
from widget.domain.inbound import PayloadError, parse_inbound

KOMMO_PIPES = (
    PipelineInfo(
        "lead",
        "1",
        True,
        1,
        (StageInfo("10", "incoming", 10), StageInfo("11", "open", 20), StageInfo("142", "won", 10000)),
    ),
    PipelineInfo("lead", "2", False, 2, (StageInfo("20", "incoming", 10), StageInfo("21", "open", 20))),
)
B24_PIPES = (
    PipelineInfo("deal", "0", True, 300, (StageInfo("NEW", "open", 10), StageInfo("WON", "won", 60))),
    PipelineInfo("deal", "3", False, 200, (StageInfo("C3:NEW", "open", 10),)),
    PipelineInfo("lead", "STATUS", True, 0, (StageInfo("NEW", "open", 10), StageInfo("IN_PROCESS", "open", 20))),
)


def test_phones_are_normalized_and_junk_is_refused():
    assert normalize_phone("+7 (900) 123-45-67") == "+79001234567"
    assert normalize_phone("79001234567") == "+79001234567"
    assert normalize_phone("12") is None
    assert normalize_phone(None) is None


def test_client_is_one_per_phone_across_channels_else_per_messenger_chat():
    assert client_key("+79001234567", "whatsapp", "a") == client_key("+79001234567", "telegram", "b")
    assert client_key(None, "telegram", "42") != client_key(None, "instagram", "42")


def test_kommo_contact_and_lead_in_the_chosen_stage():
    plan = plan_new_client("kommo", "lead", "classic", "2", "21", KOMMO_PIPES)
    assert (plan.entity, plan.with_contact, plan.incoming, plan.pipeline_id, plan.stage_id) == (
        "lead",
        True,
        False,
        "2",
        "21",
    )
    assert plan.fallback_reason == ""


def test_kommo_incoming_leads_stage_creates_an_incoming_lead():
    plan = plan_new_client("kommo", "lead", "classic", "1", "10", KOMMO_PIPES)
    assert plan.incoming and plan.stage_id == "10"


def test_vanished_pipeline_falls_back_to_the_main_pipelines_first_stage():
    plan = plan_new_client("kommo", "lead", "classic", "99", "990", KOMMO_PIPES)
    assert (plan.pipeline_id, plan.stage_id, plan.incoming) == ("1", "11", False)
    assert "99" in plan.fallback_reason
    gone_stage = plan_new_client(
        "kommo",
        "lead",
        "classic",
        "2",
        "21",
        (KOMMO_PIPES[0], PipelineInfo("lead", "2", False, 2, (StageInfo("21", "open", 20, is_active=False),))),
    )
    assert (gone_stage.pipeline_id, gone_stage.stage_id) == ("1", "11") and gone_stage.fallback_reason


def test_bitrix24_deal_with_contact_or_a_lone_lead():
    deal = plan_new_client("bitrix24", "deal", "classic", "3", "C3:NEW", B24_PIPES)
    assert (deal.entity, deal.with_contact, deal.pipeline_id, deal.stage_id) == ("deal", True, "3", "C3:NEW")
    lead = plan_new_client("bitrix24", "lead", "classic", "STATUS", "IN_PROCESS", B24_PIPES)
    assert (lead.entity, lead.with_contact, lead.stage_id) == ("lead", False, "IN_PROCESS")


def test_bitrix24_simple_mode_has_no_leads_so_a_deal_is_created():
    plan = plan_new_client("bitrix24", "lead", "simple", "STATUS", "NEW", B24_PIPES)
    assert (plan.entity, plan.pipeline_id, plan.stage_id) == ("deal", "0", "NEW")
    assert "simple" in plan.fallback_reason


def test_unconfigured_channel_uses_the_main_pipeline_silently():
    plan = plan_new_client("kommo", "lead", "classic", None, None, KOMMO_PIPES)
    assert (plan.pipeline_id, plan.stage_id, plan.fallback_reason) == ("1", "11", "")
    assert plan_new_client("kommo", "lead", "classic", None, None, ()).pipeline_id is None


GOOD = {
    "message_id": "m-1",
    "channel_id": 3,
    "chat_type": "whatsapp",
    "chat_id": "5511987654321",
    "phone": "+55 11 98765-4321",
    "sender_name": " Ana ",
    "text": "Hi",
    "sent_at": "2026-01-31T15:00:00+03:00",
}


def test_parse_good_payload():
    msg = parse_inbound(GOOD)
    assert msg.phone == "+5511987654321" and msg.sender_name == "Ana"
    assert msg.sent_at == datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_inbound({**GOOD, "phone": None, "future_field": 1}).phone is None


def test_parse_lists_every_problem():
    with pytest.raises(PayloadError) as err:
        parse_inbound(
            {"channel_id": "3", "chat_type": "fax", "chat_id": 5, "text": "", "phone": "12", "sent_at": "yesterday"}
        )
    problems = err.value.problems
    for expected in (
        "message_id: required",
        "channel_id: must be a positive integer",
        "chat_type: must be one of",
        "chat_id: must be a string",
        "text: must not be empty",
        "phone: must be a phone number",
        "sent_at: must be an ISO 8601",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_parse_refuses_naive_times_and_non_objects():
    with pytest.raises(PayloadError, match="time zone"):
        parse_inbound({**GOOD, "sent_at": "2026-01-31T12:00:00"})
    with pytest.raises(PayloadError, match="JSON object"):
        parse_inbound([GOOD])
