"""Pieces of the sandbox that carry Bitrix24's rules: the leaky bucket, batch references, and how
the portal reads filters and fields (what it does not know, it skips)."""

from __future__ import annotations

from sandbox.bitrix24.faults import LeakyBucket
from sandbox.bitrix24.filters import (
    USER_FILTER_FIELDS,
    known_fields,
    known_terms,
    matches,
    php_truthy,
    split_key,
)
from sandbox.bitrix24.rest import _resolve


def test_leaky_bucket_drains_at_its_rate():
    bucket = LeakyBucket(rate=2.0, burst=3)
    assert [bucket.admit(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.admit(100.4) is False  # 0.8 drained: still full
    assert bucket.admit(100.6) is True  # 1.2 drained: room for one


def test_batch_references_resolve_like_the_core():
    results = {"c": 46, "find": [{"ID": "7", "PHONE": [{"VALUE": "+1"}]}], "u": {"UF_DEPARTMENT": [1, 2]}}
    assert _resolve({"fields": {"CONTACT_ID": "$result[c]"}}, results) == {"fields": {"CONTACT_ID": 46}}
    assert _resolve("$result[find][0][ID]", results) == "7"
    assert _resolve("$result[u][UF_DEPARTMENT]", results) == [1, 2]  # whole value: the raw array
    assert _resolve("dept $result[u][UF_DEPARTMENT][1]!", results) == "dept 2!"
    assert _resolve("$result[find][0][MISSING]", results) == {"ID": "7", "PHONE": [{"VALUE": "+1"}]}
    assert _resolve("$result[nope]", results) == "$result[nope]"


def test_a_filter_key_is_an_operation_and_a_field():
    assert split_key(">=ID") == (">=", "ID")
    assert split_key("!@id") == ("!@", "ID")
    assert split_key("=%NAME") == ("=%", "NAME")
    assert split_key("name") == ("", "NAME")
    assert split_key("=") == ("", "=")  # nothing after the sign: no operation


def test_terms_naming_no_field_are_skipped():
    sdk = {"bx24_request_id": "1", "bx24_sdk_type": "b24-js-sdk", "bx24_sdk_ver": "0.4", "sort": "ID", "start": 0}
    assert known_terms({**sdk, ">id": "3", "Active": "Y"}, USER_FILTER_FIELDS) == [
        (">", "ID", "3"),
        ("", "ACTIVE", "Y"),
    ]
    assert known_terms({"UF_CRM_1": "x", "NOPE": 1}, {"UF_CRM_*", "ID"}) == [("", "UF_CRM_1", "x")]
    assert known_fields("deal", {"TITLE": "t", "NAME": "a contact's field", "UF_CRM_7": 1}) == {
        "TITLE": "t",
        "UF_CRM_7": 1,
    }


def test_operations_compare_like_the_portal():
    assert matches("7", "", 7) and matches("7", "@", ["1", "7"]) and not matches("7", "!@", [7])
    assert matches("12", ">", "9")  # numbers compare as numbers, not as text
    assert matches(["+1 202", "+44 20"], "", "+44 20") and matches(["+1"], "!", "+2")
    assert matches("Ana Lima", "%", "LIM") and matches("Ana", "=%", "an%") and not matches("Ana", "=%", "%x")
    assert matches("ana", "", "ANA", fold=True) and not matches("ana", "", "ANA")


def test_php_truthiness_of_filter_values():
    assert [php_truthy(v) for v in ("", "0", 0, False, None, [])] == [False] * 6
    assert [php_truthy(v) for v in ("false", "N", "1", True, 2)] == [True] * 5
