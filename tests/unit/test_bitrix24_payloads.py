"""What Bitrix24 sends us becomes typed data at the edge, or a clear refusal."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest

from sandbox.bitrix24 import phpform
from widget.crm.bitrix24.events import application_token_matches, card_target
from widget.crm.bitrix24.payloads import (
    AppInfo,
    EventPost,
    FramePost,
    Profile,
    parse_categories,
    parse_stages,
    parse_user,
)
from widget.crm.bitrix24.php import PayloadError, php_decode, php_query
from widget.crm.errors import CrmBadResponse

MEMBER = "a223c6b3710f85df22e9377d6c4f7553"


def test_php_forms_round_trip_between_us_and_the_sandbox():
    nested = {"fields": {"NAME": "Zoë", "PHONE": [{"VALUE": "+1 555", "VALUE_TYPE": "WORK"}], "OPENED": True}}
    # What we encode, the (PHP-like) portal reads back ...
    assert phpform.listify(phpform.decode(php_query(nested))) == {
        "fields": {"NAME": "Zoë", "PHONE": [{"VALUE": "+1 555", "VALUE_TYPE": "WORK"}], "OPENED": "1"}
    }
    # ... and what the portal sends, we read.
    sent = phpform.encode({"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": 759}}, "auth": {"member_id": MEMBER}})
    tree = php_decode(parse_qsl(sent))
    assert tree == {"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": "759"}}, "auth": {"member_id": MEMBER}}


def test_php_decode_appends_and_limits_depth():
    assert php_decode([("a[]", "x"), ("a[]", "y")]) == {"a": {"0": "x", "1": "y"}}
    with pytest.raises(PayloadError):
        php_decode([("a" + "[b]" * 10, "deep")])


def _frame(**form: str) -> FramePost:
    base = {"AUTH_ID": "tok", "member_id": MEMBER, "PLACEMENT": "DEFAULT"}
    base.update(form)
    return FramePost.parse({"DOMAIN": "Portal.Bitrix24.com", "PROTOCOL": "1", "LANG": "ru", "APP_SID": "s"}, base)


def test_frame_post_reads_query_and_body():
    frame = _frame(PLACEMENT_OPTIONS=json.dumps({"ID": "8061", "URI": "/crm/deal/details/8061/"}), AUTH_EXPIRES="3600")
    assert (frame.domain, frame.protocol, frame.lang, frame.member_id) == ("portal.bitrix24.com", 1, "ru", MEMBER)
    assert frame.placement_options["ID"] == "8061"
    assert frame.application_token == ""  # optional in older portals


@pytest.mark.parametrize(
    "form",
    [{"member_id": ""}, {"member_id": "bad id!"}, {"AUTH_ID": ""}, {"PLACEMENT_OPTIONS": "{not json"}],
)
def test_frame_post_that_is_not_bitrix24_is_refused(form):
    with pytest.raises(PayloadError):
        _frame(**form)


def test_card_target_only_for_detail_tabs_with_a_numeric_id():
    assert card_target(_frame(PLACEMENT="CRM_DEAL_DETAIL_TAB", PLACEMENT_OPTIONS='{"ID":"8061"}')) == ("deal", "8061")
    assert card_target(_frame(PLACEMENT="CRM_LEAD_DETAIL_TAB", PLACEMENT_OPTIONS='{"ID":"1 OR 1"}')) is None
    assert card_target(_frame(PLACEMENT="LEFT_MENU", PLACEMENT_OPTIONS='{"URI":"/crm/"}')) is None


def test_events_parse_with_or_without_the_sdk_fields():
    pairs = [
        ("event", "onCrmDealUpdate"),
        ("data[FIELDS][ID]", "759"),
        ("ts", "1466439714"),
        ("auth[member_id]", MEMBER),
        ("auth[application_token]", "51856fef"),
    ]
    bare = EventPost.parse(pairs)
    assert (bare.event, bare.entity_id(), bare.event_handler_id, bare.auth.access_token) == (
        "ONCRMDEALUPDATE",
        "759",
        "",
        "",
    )
    full = EventPost.parse([*pairs, ("event_handler_id", "14"), ("auth[expires]", "1780319382")])
    assert full.event_handler_id == "14"
    with pytest.raises(PayloadError):
        EventPost.parse([("event", "ONAPPUNINSTALL")])  # no auth[...] at all


def test_application_tokens_compare_only_when_both_exist():
    assert application_token_matches("abc", "abc")
    assert not application_token_matches("abc", "abd")
    assert not application_token_matches(None, "abc")
    assert not application_token_matches("abc", "")


def test_app_info_needs_app_portal_and_domain():
    info = AppInfo.parse(
        {"result": {"client_id": "local.x", "user_id": 1, "install": {"member_id": MEMBER, "domain": "A.b24.com"}}}
    )
    assert (info.client_id, info.member_id, info.domain, info.user_id) == ("local.x", MEMBER, "a.b24.com", "1")
    with pytest.raises(CrmBadResponse):
        AppInfo.parse({"result": {"client_id": "local.x", "install": []}})


def test_users_profiles_and_stages():
    user = parse_user({"ID": "9", "NAME": "伟", "LAST_NAME": "陈", "ACTIVE": False, "EMAIL": "c@x"}, frozenset({"9"}))
    assert (user.name, user.is_active, user.is_admin) == ("伟 陈", False, True)
    assert parse_user({"ID": "3", "ACTIVE": "Y", "EMAIL": "only@mail"}).name == "only@mail"
    assert Profile.parse({"ID": "1", "ADMIN": True, "NAME": "Ann"}).is_admin
    with pytest.raises(CrmBadResponse):
        Profile.parse([])  # an inactive user's empty profile
    stages = parse_stages(
        [
            {"STATUS_ID": "C1:WON", "NAME": "Won", "SORT": "60", "SEMANTICS": "S"},
            {"STATUS_ID": "C1:NEW", "NAME": "New", "SORT": "10", "SEMANTICS": None},
            {"STATUS_ID": "C1:LOSE", "NAME": "Lost", "SORT": "70", "EXTRA": {"SEMANTICS": "failure"}},
        ]
    )
    assert [(s.crm_stage_id, s.kind) for s in stages] == [("C1:NEW", "open"), ("C1:WON", "won"), ("C1:LOSE", "lost")]
    cats = parse_categories({"categories": [{"id": 0, "name": "General", "sort": 300, "isDefault": "Y"}]})
    assert cats[0].id == "0" and cats[0].is_default
