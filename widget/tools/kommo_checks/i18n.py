"""The widget's languages (reference kommo.md §4.2): ``widget.locale``, one ``i18n/<locale>.json``
per language, all of one shape and translated, and every i18n key the manifest or script.js uses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from widget.tools.kommo_checks.report import Report

# §4.2: languages a Kommo widget may declare.
KOMMO_LOCALES = {"en", "es", "pt", "tr", "id"}


def check_locales(manifest: dict[str, Any], report: Report) -> list[str]:
    locales = manifest["widget"].get("locale")
    if not isinstance(locales, list) or not locales or not all(isinstance(x, str) for x in locales):
        report.error('manifest.json: widget.locale must list the languages, e.g. ["en", "es", "pt"]')
        return []
    for lang in locales:
        if lang not in KOMMO_LOCALES:
            report.error(f"manifest.json: widget.locale {lang!r} is not a Kommo language ({sorted(KOMMO_LOCALES)})")
    return [x for x in locales if x in KOMMO_LOCALES]


def load_i18n(texts: dict[str, str], locales: list[str], report: Report) -> dict[str, dict[str, Any]]:
    langs: dict[str, dict[str, Any]] = {}
    for lang in locales:
        name = f"i18n/{lang}.json"
        if name not in texts:
            report.error(f"{name} is missing: every language in widget.locale needs its file")
            continue
        try:
            data = json.loads(texts[name])
        except ValueError as exc:
            report.error(f"{name} is not valid JSON: {exc}")
            continue
        if not isinstance(data, dict):
            report.error(f"{name}: must hold one JSON object")
            continue
        langs[lang] = data
    if not langs:
        return langs
    reference = "en" if "en" in langs else next(iter(langs))
    ref_leaves = dict(_leaves(langs[reference]))
    for lang, data in langs.items():
        leaves = dict(_leaves(data))
        for path in sorted(ref_leaves.keys() - leaves.keys()):
            report.error(f"i18n/{lang}.json: missing key {path} (present in {reference}.json)")
        for path in sorted(leaves.keys() - ref_leaves.keys()):
            report.error(f"i18n/{lang}.json: extra key {path} (not in {reference}.json); all languages need one shape")
        for path, value in leaves.items():
            if not isinstance(value, str) or not value.strip():
                report.error(f"i18n/{lang}.json: {path} must be a non-empty text")
        if lang != reference and ref_leaves:
            same = [p for p, v in leaves.items() if ref_leaves.get(p) == v]
            if len(same) * 2 > len(ref_leaves):
                report.error(
                    f"i18n/{lang}.json: {len(same)} of {len(ref_leaves)} texts are the same as in "
                    f"{reference}.json; translate them"
                )
    return langs


def _leaves(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) for every non-object value of an i18n file."""
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def lookup(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def require_i18n(langs: dict[str, dict[str, Any]], key: str, where: str, report: Report, *, want_text: bool) -> None:
    for lang, data in langs.items():
        value = lookup(data, key)
        if value is None or (want_text and not isinstance(value, str)):
            report.error(f"i18n/{lang}.json: {where} uses the key {key}, which is missing here")
