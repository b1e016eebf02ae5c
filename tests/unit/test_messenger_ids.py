"""How a client's messenger identity is written into a CRM contact and read back: one value per
messenger and chat id, so that chat ids of different messengers never match each other."""

from __future__ import annotations

import pytest

from widget.crm.bitrix24.client import CRM_MODE_CLASSIC
from widget.crm.bitrix24.port import Bitrix24CrmPort
from widget.crm.kommo import payloads
from widget.crm.kommo.creates import NewContact, NewLead
from widget.domain.messenger_ids import MessengerId, crm_messenger_id, messenger_id, parse_messenger_id
from widget.domain.ports import DEAL, NewClientSpec


def test_the_value_names_the_messenger_so_equal_chat_ids_do_not_collide():
    telegram = messenger_id("telegram", "123456")
    instagram = messenger_id("instagram", "123456")
    assert telegram is not None and instagram is not None
    assert telegram.value == "telegram:123456"
    assert instagram.value == "instagram:123456"
    assert telegram.value != instagram.value


def test_the_messenger_is_a_type_and_the_chat_id_is_kept_as_given():
    found = messenger_id(" Telegram ", "  AbC_42 ")
    assert found == MessengerId("telegram", "AbC_42")


@pytest.mark.parametrize(
    ("messenger", "chat_id"),
    [(None, "1"), ("telegram", None), ("", "1"), ("telegram", "  "), ("tele:gram", "1"), ("1telegram", "1")],
)
def test_no_identity_without_a_usable_messenger_and_chat_id(messenger: str | None, chat_id: str | None):
    assert messenger_id(messenger, chat_id) is None


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("telegram:123456", MessengerId("telegram", "123456")),
        ("instagram:john.doe", MessengerId("instagram", "john.doe")),
        # Only the first separator splits: a chat id may itself hold one.
        ("whatsapp:79001234567:c.us", MessengerId("whatsapp", "79001234567:c.us")),
    ],
)
def test_values_we_wrote_parse_back(value: str, parsed: MessengerId):
    assert parse_messenger_id(value) == parsed
    assert parsed.value == value


@pytest.mark.parametrize("value", [None, "", "john.skype", ":123", "telegram:", "Telegram:1", "telegram: 1"])
def test_values_a_person_typed_are_not_ours(value: str | None):
    assert parse_messenger_id(value) is None


def test_a_phone_client_of_whatsapp_is_known_by_the_phone_alone():
    assert crm_messenger_id("+79001234567", "whatsapp", "79001234567") is None
    assert crm_messenger_id("+79001234567", "waba", "79001234567") is None
    # Without a phone even a WhatsApp chat is searched by its id.
    whatsapp = crm_messenger_id(None, "whatsapp", "79001234567")
    assert whatsapp is not None and whatsapp.value == "whatsapp:79001234567"


def test_telegram_and_instagram_clients_carry_their_chat_id_with_or_without_a_phone():
    with_phone = crm_messenger_id("+34600111222", "telegram", "5123")
    assert with_phone is not None and with_phone.value == "telegram:5123"
    without = crm_messenger_id(None, "instagram", "john.doe")
    assert without is not None and without.value == "instagram:john.doe"
    assert crm_messenger_id(None, None, "5123") is None  # work recorded before the type was carried


# --- Kommo's IM field --------------------------------------------------------------------------


def test_kommo_contact_carries_the_identity_in_the_im_field():
    body = NewContact("Client", im="telegram:5123").to_json()
    assert body["custom_fields_values"] == [
        {"field_code": "IM", "values": [{"value": "telegram:5123", "enum_code": "OTHER"}]}
    ]


def test_kommo_contact_with_phone_and_identity_sends_both_fields():
    lead = NewLead("Client (Telegram)", contact=NewContact("Client", "+34600111222", 9, im="telegram:5123"))
    fields = lead.to_json()["_embedded"]["contacts"][0]["custom_fields_values"]
    assert [f["field_code"] for f in fields] == ["PHONE", "IM"]


def test_kommo_contact_without_phone_or_identity_sends_no_fields():
    assert "custom_fields_values" not in NewContact("Client").to_json()


def test_kommo_contacts_read_the_im_values():
    contact = payloads.parse_contact(
        {
            "id": 5,
            "name": "Client",
            "custom_fields_values": [
                {"field_code": "IM", "values": [{"value": "telegram:5123", "enum": "OTHER"}, {"value": "skype.me"}]},
                {"field_code": "PHONE", "values": [{"value": "+1555"}]},
            ],
        }
    )
    assert contact.ims == ("telegram:5123", "skype.me")
    assert contact.phones == ("+1555",)


# --- Bitrix24's IM multifield ------------------------------------------------------------------


def _spec(phone: str | None, messenger: str, chat_id: str) -> NewClientSpec:
    return NewClientSpec(
        name="Client",
        phone=phone,
        messenger=messenger,
        messenger_id=chat_id,
        entity=DEAL,
        with_contact=True,
        pipeline_id=None,
        stage_id=None,
        responsible_crm_user_id=None,
    )


@pytest.mark.parametrize(
    ("messenger", "value_type"), [("telegram", "TELEGRAM"), ("instagram", "INSTAGRAM"), ("whatsapp", "OTHER")]
)
def test_bitrix24_records_carry_the_identity_with_the_portals_own_value_type(messenger: str, value_type: str):
    port = Bitrix24CrmPort(None, 1, CRM_MODE_CLASSIC, dict)  # type: ignore[arg-type]  # no request is made
    fields = port._communications(_spec(None, messenger, "5123"))
    assert fields == {"IM": [{"VALUE": f"{messenger}:5123", "VALUE_TYPE": value_type}]}


def test_bitrix24_whatsapp_client_with_phone_gets_the_phone_only():
    port = Bitrix24CrmPort(None, 1, CRM_MODE_CLASSIC, dict)  # type: ignore[arg-type]
    fields = port._communications(_spec("+79001234567", "whatsapp", "79001234567"))
    assert fields == {"PHONE": [{"VALUE": "+79001234567", "VALUE_TYPE": "MOBILE"}]}
