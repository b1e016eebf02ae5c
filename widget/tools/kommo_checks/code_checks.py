"""The code rules of Kommo's moderation for script.js and style.css (reference kommo.md §4.4, §8).

These read the code as text. They are meant to catch the usual slips (an ``eval``, a stray
``console.log``, an unscoped CSS rule) before a moderator does, not to parse JavaScript.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

MINIFIED_LINE = 200  # characters; longer lines read as minified code, which moderation refuses

_JS_TOKENS = re.compile(r"//[^\n]*|/\*.*?\*/|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"|`(?:\\.|[^`\\])*`", re.S)


def _blank_js(source: str) -> str:
    """The code with comments and string contents blanked (same length, same lines), so the
    checks below see code only. Regular-expression literals are not recognised: our script has
    none, and a quote inside one would only make a check stricter, not miss code."""

    def blank(match: re.Match[str]) -> str:
        text = match.group(0)
        keep = text[0] if text[0] in "'\"`" else ""
        inner = re.sub(r"[^\n]", " ", text[len(keep) : len(text) - len(keep)])
        return keep + inner + keep

    return _JS_TOKENS.sub(blank, source)


def _spans(code: str, opener: re.Pattern[str]) -> list[tuple[int, int]]:
    """Ranges from each match of ``opener`` (ending on "(" or "{") to its matching closer."""
    pairs = {"(": ")", "{": "}"}
    found = []
    for match in opener.finditer(code):
        start = match.end() - 1
        open_char = code[start]
        depth = 0
        for pos in range(start, len(code)):
            if code[pos] == open_char:
                depth += 1
            elif code[pos] == pairs[open_char]:
                depth -= 1
                if depth == 0:
                    found.append((start, pos))
                    break
    return found


def _line(code: str, pos: int) -> int:
    return code.count("\n", 0, pos) + 1


_CALLBACK_FOR_LOCATION = {
    "advanced_settings": "advancedSettings",
    "widget_page": "initMenuPage",
    "settings": "settings",
}


def check_script(source: str, manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """§4.4/§8 code rules: (problems, the i18n keys the script reads)."""
    problems: list[str] = []
    code = _blank_js(source)
    where = "script.js"
    if not re.match(r"\s*define\s*\(\s*\[", code):
        problems.append(f"{where}: must be an AMD module: define(['jquery'], function ($) {{ … }})")
    for name in ("render", "init", "bind_actions"):
        if not re.search(rf"\b{name}\s*:\s*function\b", code):
            problems.append(f"{where}: callbacks.{name} is missing (Kommo calls render → init → bind_actions)")
    declared = {str(loc).split("-", 1)[0] for loc in manifest.get("locations") or []}
    for location, callback in _CALLBACK_FOR_LOCATION.items():
        if location in declared and not re.search(rf"\b{callback}\s*:\s*function\b", code):
            problems.append(f"{where}: the {location} location is declared but callbacks.{callback} is missing")
    rules = [
        (r"\beval\s*\(", "eval() is forbidden"),
        (r"\bnew\s+Function\s*\(", "new Function() is eval in disguise and forbidden"),
        (r"\basync\s*:\s*false\b", "synchronous XHR is forbidden"),
        (r"\.open\s*\([^,()]*,[^,()]*,\s*false\s*\)", "synchronous XHR is forbidden"),
        (r"\bdebugger\b", "debug leftovers are not allowed"),
        (r"\b(?:APP|AMOCRM)\b(?:\s*\.\s*\w+|\[[^\]]*\]|\([^()]*\))*\s*(?:[-+*/]?=(?!=)|\+\+|--)", "APP is read-only"),
        (r"\bdelete\s+(?:APP|AMOCRM)\b", "APP is read-only"),
    ]
    for pattern, why in rules:
        for match in re.finditer(pattern, code):
            problems.append(f"{where}:{_line(code, match.start())}: {why}: {match.group(0).strip()}")
    # The tag name is a string, which the blanked code no longer shows: read the source itself.
    for match in re.finditer(r"createElement\s*\(\s*['\"]script['\"]", source):
        problems.append(f"{where}:{_line(source, match.start())}: load libraries through define() dependencies")
    long_lines = [n for n, line in enumerate(source.split("\n"), 1) if len(line) > MINIFIED_LINE]
    if long_lines:
        problems.append(f"{where}: lines {long_lines[:5]} are over {MINIFIED_LINE} characters; ship readable code")

    catch_blocks = _spans(code, re.compile(r"\bcatch\s*\([^()]*\)\s*\{")) + _spans(
        code, re.compile(r"\.\s*(?:catch|fail)\s*\(")
    )
    for match in re.finditer(r"\bconsole\s*\.", code):
        if not any(a < match.start() < b for a, b in catch_blocks):
            problems.append(f"{where}:{_line(code, match.start())}: console.* is allowed only in catch blocks")
    loops = _spans(code, re.compile(r"\b(?:for|while)\s*\([^{};]*(?:;[^{};]*)*\)\s*\{")) + _spans(
        code, re.compile(r"\.\s*(?:each|forEach|map|filter|reduce)\s*\(")
    )
    for match in re.finditer(r"\$authorizedAjax|\bcrm_post\b", code):
        if any(a < match.start() < b for a, b in loops):
            problems.append(f"{where}:{_line(code, match.start())}: {match.group(0)} must not be called in a loop")
    return problems, sorted(set(re.findall(r"\bi18n\w*\(\s*['\"]([\w.]+)['\"]\s*\)", source)))


def check_css(css: str, script: str) -> list[str]:
    """§8: every rule sits under the widget's root class, so nothing leaks into Kommo's UI."""
    problems: list[str] = []
    text = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    long_lines = [n for n, line in enumerate(css.split("\n"), 1) if len(line) > MINIFIED_LINE]
    if long_lines:
        problems.append(f"style.css: lines {long_lines[:5]} are over {MINIFIED_LINE} characters; ship readable CSS")
    selectors = list(_css_selectors(text, problems))
    if not selectors:
        return problems
    # The root is the class most rules start with; every other rule then stands out.
    leading = Counter(m.group(0) for m in (re.match(r"\.[\w-]+", sel) for sel in selectors) if m)
    if not leading:
        problems.append("style.css: no rule starts with the widget's root class")
        return problems
    root = leading.most_common(1)[0][0]
    if root[1:] not in script:
        problems.append(f"style.css: the root class {root} is not used by script.js")
    scoped = re.compile(re.escape(root) + r"(?![\w-])")
    for selector in selectors:
        if not scoped.match(selector):
            problems.append(f"style.css: {selector!r} is not scoped under {root}")
    return problems


def _css_selectors(text: str, problems: list[str]) -> Iterator[str]:
    pos = 0
    while True:
        brace = text.find("{", pos)
        if brace < 0:
            return
        prelude = text[pos:brace].strip()
        depth, end = 0, brace
        for end in range(brace, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        body = text[brace + 1 : end]
        if prelude.startswith("@media") or prelude.startswith("@supports"):
            yield from _css_selectors(body, problems)
        elif prelude.startswith("@keyframes"):
            pass  # from/to/percent steps, not selectors
        elif prelude.startswith("@"):
            problems.append(f"style.css: {prelude.split()[0]} rules apply to the whole page; keep styles to the widget")
        else:
            yield from (s.strip() for s in prelude.split(",") if s.strip())
        pos = end + 1
