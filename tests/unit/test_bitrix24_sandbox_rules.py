"""Pieces of the sandbox that carry Bitrix24's rules: the leaky bucket and batch references."""

from __future__ import annotations

from widget.sandbox.bitrix24.faults import LeakyBucket
from widget.sandbox.bitrix24.rest import _resolve


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
