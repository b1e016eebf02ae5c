"""Kommo's moderation rules for what the marketplace shows (reference kommo.md §8): the widget's
name and descriptions in each language, the required logos and the images' size and content."""

from __future__ import annotations

import re
from typing import Any

from widget.tools import png
from widget.tools.kommo_checks.i18n import lookup
from widget.tools.kommo_checks.report import Report

# §4.1: the moderation checklist's logo files; each at most 300 KB.
REQUIRED_LOGOS = ("logo.png", "logo_main.png", "logo_medium.png", "logo_min.png", "logo_small.png")
MAX_IMAGE_BYTES = 300 * 1024


_NAME_VIA = re.compile(r"\S\s+v[ií]a\s+\S", re.I)
_ANCHOR = re.compile(r"<a\b[^>]*>", re.I)


def check_naming(manifest: dict[str, Any], langs: dict[str, dict[str, Any]], report: Report) -> None:
    """§8 naming and branding, checked on the texts each language shows."""
    widget = manifest["widget"]
    for lang, data in langs.items():
        where = f"i18n/{lang}.json"
        name = lookup(data, str(widget.get("name")))
        short = lookup(data, str(widget.get("short_description")))
        description = lookup(data, str(widget.get("description")))
        if isinstance(name, str):
            if len(name) > 30:
                report.error(f"{where}: the widget name {name!r} is longer than 30 characters")
            if any(len(word) > 19 for word in name.split()):
                report.error(f"{where}: the widget name {name!r} has a word longer than 19 characters")
            if re.search(r"kommo|amocrm", name, re.I):
                report.error(f"{where}: the widget name must not contain Kommo or amoCRM")
            if not _NAME_VIA.search(name):
                report.error(f'{where}: the widget name {name!r} should follow the "X via Y" pattern')
        if isinstance(short, str) and len(short) > 50:
            report.error(f"{where}: the short description is {len(short)} characters; at most 50")
        if isinstance(description, str):
            if len(description) > 400:
                report.error(f"{where}: the description is {len(description)} characters; at most 400")
            if re.search(r"<script", description, re.I):
                report.error(f"{where}: the description must not contain <script>")
            for anchor in _ANCHOR.findall(description):
                if 'target="_blank"' not in anchor or 'referrerpolicy="no-referrer"' not in anchor:
                    report.error(f'{where}: links need target="_blank" referrerpolicy="no-referrer": {anchor}')


def check_images(files: dict[str, bytes], report: Report) -> None:
    for logo in REQUIRED_LOGOS:
        if f"images/{logo}" not in files:
            report.error(f"images/{logo} is missing (required by Kommo's moderation checklist)")
    for name, data in files.items():
        if not name.startswith("images/"):
            continue
        if len(data) > MAX_IMAGE_BYTES:
            report.error(f"{name}: {len(data) // 1024} KB; each image must be at most 300 KB")
        if name.endswith(".png"):
            try:
                png.png_size(data)
            except ValueError as exc:
                report.error(f"{name}: {exc}")
        elif name.endswith(".svg"):
            text = data.decode("utf-8", "replace")
            if not re.match(r"\s*(<\?xml[^>]*>\s*)?<svg\b", text) or "</svg>" not in text:
                report.error(f"{name}: not an SVG image")
            if re.search(r"<script|\son\w+\s*=|javascript:", text, re.I):
                report.error(f"{name}: SVG icons must not carry scripts or event handlers")
