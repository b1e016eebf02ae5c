"""Bitrix24 speaks PHP: iframe opens and events are ``application/x-www-form-urlencoded`` with
bracketed nesting (``auth[access_token]=…``, ``data[FIELDS][ID]=…``), and batch commands carry
bracketed query strings (reference §1.3, §5.2, §6.6). ``php_decode``/``php_pairs`` are our two
directions of that encoding; ``as_list``/``as_dict`` read the PHP arrays that come back in JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

_MAX_PAIRS = 2000
_MAX_DEPTH = 8
_BRACKET = re.compile(r"\[([^\[\]]*)\]")


class PayloadError(ValueError):
    """An inbound request is not shaped like Bitrix24's; the message is safe to log."""


def php_decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][c]=v`` pairs into nested dicts, the way PHP's ``parse_str`` builds arrays.

    PHP arrays are ordered maps, so lists stay dicts keyed ``"0"``, ``"1"``…; ``a[]=`` appends.
    """
    root: dict[str, Any] = {}
    for count, (key, value) in enumerate(pairs):
        if count >= _MAX_PAIRS:
            raise PayloadError("too many form fields")
        head, bracket, rest = key.partition("[")
        if not head:
            continue
        path = [head]
        if bracket:
            path.extend(_BRACKET.findall("[" + rest))
        if len(path) > _MAX_DEPTH:
            raise PayloadError("form field nested too deeply")
        node = root
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if part == "":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return root


def php_pairs(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested params into ``a[b][0]=v`` pairs (PHP ``http_build_query`` conventions)."""
    out: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        if value is None:
            return out
        if isinstance(value, bool):
            return [(prefix, "1" if value else "0")]
        return [(prefix, str(value))]
    for k, v in items:
        key = f"{prefix}[{k}]" if prefix else str(k)
        out.extend(php_pairs(v, key))
    return out


def php_query(params: Mapping[str, Any]) -> str:
    return urlencode(php_pairs(params))


def as_list(value: Any) -> list[Any]:
    """A PHP "array" that may have arrived as a JSON list, a dict keyed 0..n, or PHP's ``[]``."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return []


def as_dict(value: Any) -> dict[str, Any]:
    """Bitrix24 serialises an empty PHP array as ``[]`` even where a map is expected (§6.1)."""
    if isinstance(value, dict):
        return value
    return {}
