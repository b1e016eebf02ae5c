"""How the portal reads what a caller sends it: list filters, and fields it knows.

Bitrix24 is lenient with what it does not know, and the sandbox must be too, or it refuses (or
empties) calls the real portal answers:

* a top-level parameter no method reads is ignored; the official JS SDK adds ``bx24_request_id``,
  ``bx24_sdk_type`` and ``bx24_sdk_ver`` to every call;
* a filter key naming no field is skipped, it narrows nothing: main's ``CSQLWhere::GetQueryEx``
  (behind the legacy ``crm.*.list``) builds SQL only for keys in its field map, and rest's
  ``User::prepareUserFilter`` keeps only the user fields the token's scope may read;
* a key may start with an operation (``>=ID``, ``!STATUS_ID``, ``%NAME``, ``@ID``), which is taken
  off before the field is looked up (``CSQLWhere::MakeOperation``; user.get: 1-2 non-word signs);
* ``crm.*.add``/``update`` store only the entity's fields: others are dropped (reference §6.4,
  "unknown fields ignored").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Longest first, so ">=" is not read as ">" followed by a field "=ID" (CSQLWhere's table).
OPERATIONS = ("!><", "!=%", "!%=", "!=", "!%", "><", ">=", "<=", "=%", "%=", "!@", "=", "%", ">", "<", "!", "@")
NEGATIVE = frozenset({"!", "!=", "!%", "!=%", "!%=", "!@", "!><"})


def split_key(key: str) -> tuple[str, str]:
    """``">=ID"`` → ``(">=", "ID")``; the field upper-cased, as the core does."""
    for op in OPERATIONS:
        if key.startswith(op) and len(key) > len(op):
            return op, key[len(op) :].upper()
    return "", key.upper()


def php_truthy(value: Any) -> bool:
    """PHP's idea of true: ``""``, ``"0"``, ``0``, ``false``, ``[]`` and null are false; ``"false"``
    is true (a form sends strings, and the core tests them this way)."""
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)


def _number(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _equal(actual: Any, wanted: Any, fold: bool) -> bool:
    a, w = _number(actual), _number(wanted)
    if a is not None and w is not None:
        return a == w
    left, right = str(actual if actual is not None else ""), str(wanted if wanted is not None else "")
    return left.lower() == right.lower() if fold else left == right


def _like(actual: Any, pattern: str) -> bool:
    """SQL LIKE with ``%`` wildcards, case-insensitive (MySQL's default collation)."""
    parts = [re.escape(p) for p in pattern.lower().split("%")]
    return re.fullmatch(".*".join(parts), str(actual or "").lower(), re.DOTALL) is not None


def _order(actual: Any, wanted: Any, op: str) -> bool:
    a, w = _number(actual), _number(wanted)
    left: Any = a if a is not None and w is not None else str(actual or "")
    right: Any = w if a is not None and w is not None else str(wanted or "")
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]


def _one(actual: Any, op: str, wanted: Any, fold: bool) -> bool:
    """One stored value against a positive operation."""
    base = op.lstrip("!")
    values = wanted if isinstance(wanted, list) else [wanted]
    if base in ("", "=", "@"):
        return any(_equal(actual, w, fold) for w in values)
    if base == "%":
        return any(str(w).lower() in str(actual or "").lower() for w in values)
    if base in ("=%", "%="):
        return any(_like(actual, str(w)) for w in values)
    if base == "><":
        return len(values) > 1 and _order(actual, values[0], ">=") and _order(actual, values[1], "<=")
    if base in (">", ">=", "<", "<="):
        return _order(actual, values[0] if values else "", base)
    return False


def matches(actual: Any, op: str, wanted: Any, *, fold: bool = False) -> bool:
    """Does a stored value (a list for multifields: any of its items) satisfy ``op wanted``?"""
    items = actual if isinstance(actual, list) else [actual]
    hit = any(_one(item, op, wanted, fold) for item in items)
    return not hit if op in NEGATIVE else hit


def known_terms(filt: Mapping[str, Any], fields: Iterable[str]) -> list[tuple[str, str, Any]]:
    """The filter's ``(operation, FIELD, value)`` terms whose field exists; the rest are skipped."""
    allowed = set(fields)
    terms = []
    for key, value in filt.items():
        op, name = split_key(str(key))
        if name in allowed or (name.startswith("UF_CRM_") and "UF_CRM_*" in allowed):
            terms.append((op, name, value))
    return terms


# The standard fields of each legacy CRM entity (crm.contact.fields, crm.deal.fields,
# crm.lead.fields); user fields (UF_CRM_*) are the portal's own and pass as well.
_COMMON = (
    "ID",
    "ASSIGNED_BY_ID",
    "CREATED_BY_ID",
    "MODIFY_BY_ID",
    "DATE_CREATE",
    "DATE_MODIFY",
    "OPENED",
    "COMMENTS",
    "SOURCE_ID",
    "SOURCE_DESCRIPTION",
    "ORIGINATOR_ID",
    "ORIGIN_ID",
    "ORIGIN_VERSION",
    "UTM_SOURCE",
    "UTM_MEDIUM",
    "UTM_CAMPAIGN",
    "UTM_CONTENT",
    "UTM_TERM",
    "LAST_ACTIVITY_TIME",
    "LAST_ACTIVITY_BY",
    "UF_CRM_*",
)
_PERSON = ("HONORIFIC", "NAME", "SECOND_NAME", "LAST_NAME", "BIRTHDATE", "POST", "ADDRESS", "TYPE_ID")
_COMMUNICATIONS = ("PHONE", "EMAIL", "WEB", "IM", "LINK", "HAS_PHONE", "HAS_EMAIL", "HAS_IMOL")
ENTITY_FIELDS: dict[str, frozenset[str]] = {
    "contact": frozenset(
        (*_COMMON, *_PERSON, *_COMMUNICATIONS, "PHOTO", "EXPORT", "COMPANY_ID", "COMPANY_IDS", "LEAD_ID", "FACE_ID")
    ),
    "deal": frozenset(
        (
            *_COMMON,
            "TITLE",
            "TYPE_ID",
            "CATEGORY_ID",
            "STAGE_ID",
            "STAGE_SEMANTIC_ID",
            "IS_NEW",
            "IS_RECURRING",
            "IS_RETURN_CUSTOMER",
            "IS_REPEATED_APPROACH",
            "PROBABILITY",
            "CURRENCY_ID",
            "OPPORTUNITY",
            "IS_MANUAL_OPPORTUNITY",
            "TAX_VALUE",
            "COMPANY_ID",
            "CONTACT_ID",
            "CONTACT_IDS",
            "QUOTE_ID",
            "BEGINDATE",
            "CLOSEDATE",
            "CLOSED",
            "MOVED_BY_ID",
            "MOVED_TIME",
            "LEAD_ID",
            "ADDITIONAL_INFO",
            "LOCATION_ID",
        )
    ),
    "lead": frozenset(
        (
            *_COMMON,
            *_PERSON,
            *_COMMUNICATIONS,
            "TITLE",
            "COMPANY_TITLE",
            "STATUS_ID",
            "STATUS_DESCRIPTION",
            "STATUS_SEMANTIC_ID",
            "CURRENCY_ID",
            "OPPORTUNITY",
            "IS_MANUAL_OPPORTUNITY",
            "COMPANY_ID",
            "CONTACT_ID",
            "CONTACT_IDS",
            "IS_RETURN_CUSTOMER",
            "DATE_CLOSED",
            "MOVED_BY_ID",
            "MOVED_TIME",
        )
    ),
}


def known_fields(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """What ``crm.<kind>.add``/``update`` keeps of ``fields`` (keys already upper-cased)."""
    allowed = ENTITY_FIELDS[kind]
    return {k: v for k, v in fields.items() if k in allowed or k.startswith("UF_CRM_")}


# user.get with the ``user`` scope: the user fields the core lets a filter name
# (User::getAllowedUserFields + the filter-only names userGet adds).
USER_FILTER_FIELDS = frozenset(
    (
        "ID",
        "XML_ID",
        "ACTIVE",
        "NAME",
        "LAST_NAME",
        "SECOND_NAME",
        "TITLE",
        "EMAIL",
        "LAST_LOGIN",
        "DATE_REGISTER",
        "TIME_ZONE",
        "IS_ONLINE",
        "TIME_ZONE_OFFSET",
        "TIMESTAMP_X",
        "LAST_ACTIVITY_DATE",
        "PERSONAL_GENDER",
        "PERSONAL_PROFESSION",
        "PERSONAL_BIRTHDAY",
        "PERSONAL_PHONE",
        "PERSONAL_MOBILE",
        "PERSONAL_CITY",
        "WORK_PHONE",
        "WORK_COMPANY",
        "WORK_POSITION",
        "WORK_DEPARTMENT",
        "UF_DEPARTMENT",
        "UF_PHONE_INNER",
        "UF_EMPLOYMENT_DATE",
        "USER_TYPE",
        "HAS_DEPARTAMENT",  # sic: the core's spelling
        "NAME_SEARCH",
        "EXTERNAL_AUTH_ID",
    )
)
# Searched as a whole, never with an operation in front (userGet's $clearFilterType).
USER_PLAIN_TERMS = frozenset(("HAS_DEPARTAMENT", "NAME_SEARCH", "FIND"))
