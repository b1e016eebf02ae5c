"""PHP's form encoding, as Bitrix24 (a PHP application) reads and writes it.

``encode`` is ``http_build_query``: nested maps and lists become ``a[b][0]=v`` pairs; booleans are
``1``/``0``. ``decode`` is ``parse_str``: bracketed keys become nested dicts (``a[]`` appends).
Events leave the sandbox encoded this way (reference §1.3: "use a PHP-compatible bracket encoder").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

_PART = re.compile(r"\[([^\[\]]*)\]")


def pairs(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    elif value is None:
        return []
    elif isinstance(value, bool):
        return [(prefix, "1" if value else "0")]
    else:
        return [(prefix, str(value))]
    out: list[tuple[str, str]] = []
    for k, v in items:
        out.extend(pairs(v, f"{prefix}[{k}]" if prefix else str(k)))
    return out


def encode(value: Mapping[str, Any]) -> str:
    return urlencode(pairs(value))


def decode_pairs(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in items:
        name, _, rest = key.partition("[")
        if not name:
            continue
        path = [name, *_PART.findall("[" + rest)] if rest else [name]
        node = root
        for i, part in enumerate(path):
            if part == "":
                part = str(len(node))
            if i == len(path) - 1:
                node[part] = value
            else:
                nxt = node.get(part)
                if not isinstance(nxt, dict):
                    nxt = node[part] = {}
                node = nxt
    return root


def decode(query: str) -> dict[str, Any]:
    return decode_pairs(parse_qsl(query, keep_blank_values=True))


def listify(value: Any) -> Any:
    """Dicts keyed 0..n-1 (PHP lists) back into lists, recursively."""
    if isinstance(value, dict):
        converted = {k: listify(v) for k, v in value.items()}
        if (
            converted
            and all(k.isdigit() for k in converted)
            and sorted(int(k) for k in converted) == list(range(len(converted)))
        ):
            return [converted[str(i)] for i in range(len(converted))]
        return converted
    if isinstance(value, list):
        return [listify(v) for v in value]
    return value
