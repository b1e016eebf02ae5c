"""manifest.json's structure and cross-references (reference kommo.md §4.3): locations, left menu,
settings fields, support contact, and the files an archive may hold."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from widget.tools.kommo_checks.report import Report

# §4.3. The -0/-1 suffix switches the right-hand panel in cards (and lists) off/on.
LOCATIONS = {
    "settings", "advanced_settings", "card_sdk", "catalogs", "digital_pipeline", "lead_sources",
    "widget_page", "sms", "mobile_card", "salesbot_designer", "website_chat_button", "ai_agent", "everywhere",
}  # fmt: skip
PANEL_LOCATIONS = {"lcard", "ccard", "comcard", "llist", "clist", "tlist"}
LEFT_MENU_AFTER = {"dashboard", "leads", "customers", "tasks", "catalogs", "mail", "stats", "settings"}
SETTING_TYPES = {"text", "pass", "users", "users_lp", "custom"}


def _i18n_key(value: Any, where: str, report: Report) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"\w+(\.\w+)+", value):
        return value
    report.error(f"manifest.json: {where} must be an i18n key such as widget.name, not {value!r}")
    return None


def check_manifest(manifest: dict[str, Any], files: dict[str, bytes], report: Report) -> list[str]:
    """Structure and cross-references of manifest.json; returns the i18n keys it uses."""
    widget = manifest["widget"]
    keys: list[str] = []

    def key(value: Any, where: str) -> None:
        found = _i18n_key(value, where, report)
        if found:
            keys.append(found)

    for name in ("name", "description", "short_description"):
        key(widget.get(name), f"widget.{name}")
    if not isinstance(widget.get("version"), str) or not re.fullmatch(r"\d+(\.\d+){1,3}", widget["version"]):
        report.error('manifest.json: widget.version must be a version string such as "1.0.0"')
    if widget.get("interface_version") != 2:
        report.error("manifest.json: widget.interface_version must be 2")
    if "init_once" in widget and not isinstance(widget["init_once"], bool):
        report.error("manifest.json: widget.init_once must be true or false")
    support = widget.get("support")
    if not isinstance(support, dict) or not (support.get("link") or support.get("email")):
        report.error("manifest.json: widget.support needs a link and an email (marketplace requirement)")
    else:
        _check_support(support, report)

    locations = manifest.get("locations")
    if not isinstance(locations, list) or not locations:
        report.error("manifest.json: locations must list where the widget works")
        locations = []
    declared = set()
    for loc in locations:
        base, _, suffix = str(loc).partition("-")
        ok = (base in PANEL_LOCATIONS and suffix in ("", "0", "1")) or (base in LOCATIONS and not suffix)
        if not ok:
            report.error(f"manifest.json: location {loc!r} is not one Kommo knows")
        if loc in declared:
            report.error(f"manifest.json: location {loc!r} is declared twice")
        declared.add(base)

    left_menu = manifest.get("left_menu")
    if left_menu is not None and "widget_page" not in declared:
        report.error("manifest.json: left_menu works only with the widget_page location")
    if "widget_page" in declared and not left_menu:
        report.error("manifest.json: widget_page is declared but there is no left_menu item to open it")
    if isinstance(left_menu, dict):
        for code, item in left_menu.items():
            where = f"left_menu.{code}"
            if not re.fullmatch(r"[a-z0-9_]+", code) or not isinstance(item, dict):
                report.error(f"manifest.json: {where} needs a lower-case code and an object")
                continue
            key(item.get("title"), f"{where}.title")
            _require_file(files, item.get("icon"), f"{where}.icon", report)
            sort = item.get("sort")
            if sort is not None and (not isinstance(sort, dict) or sort.get("after") not in LEFT_MENU_AFTER):
                report.error(f"manifest.json: {where}.sort.after must be one of {sorted(LEFT_MENU_AFTER)}")
            for sub_code, sub in (item.get("submenu") or {}).items():
                key((sub or {}).get("title"), f"{where}.submenu.{sub_code}.title")
    elif left_menu is not None:
        report.error("manifest.json: left_menu must be an object of menu items")

    advanced = manifest.get("advanced")
    if "advanced_settings" in declared:
        key((advanced or {}).get("title") if isinstance(advanced, dict) else None, "advanced.title")
    elif advanced is not None:
        report.error("manifest.json: advanced is set but the advanced_settings location is not declared")

    settings = manifest.get("settings") or {}
    installation = widget.get("installation")
    if not isinstance(installation, bool):
        report.error("manifest.json: widget.installation must be true or false")
    elif installation and not settings:
        report.error("manifest.json: installation is true but no settings fields are declared; set it to false")
    elif settings and not installation:
        report.error("manifest.json: settings fields are declared but installation is false; set it to true")
    if not isinstance(settings, dict):
        report.error("manifest.json: settings must be an object of fields")
        settings = {}
    for code, spec in settings.items():
        if not isinstance(spec, dict):
            report.error(f"manifest.json: settings.{code} must be an object")
            continue
        key(spec.get("name"), f"settings.{code}.name")
        if spec.get("type") not in SETTING_TYPES:
            report.error(f"manifest.json: settings.{code}.type must be one of {sorted(SETTING_TYPES)}")
        if not isinstance(spec.get("required"), bool):
            report.error(f"manifest.json: settings.{code}.required must be true or false")

    if "digital_pipeline" in declared and "logo_dp.png" not in {PurePosixPath(n).name for n in files}:
        report.error("images/logo_dp.png (174x109) is required with the digital_pipeline location")
    tour = manifest.get("tour")
    if isinstance(tour, dict) and tour.get("is_tour"):
        key(tour.get("tour_description"), "tour.tour_description")
        for lang, images in (tour.get("tour_images") or {}).items():
            for image in images:
                _require_file(files, str(image).lstrip("/"), f"tour.tour_images.{lang}", report)
    return keys


def _check_support(support: dict[str, Any], report: Report) -> None:
    link, email = support.get("link"), support.get("email")
    if not isinstance(link, str) or urlsplit(link).scheme != "https":
        report.error("manifest.json: widget.support.link must be an https:// address")
    if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        report.error("manifest.json: widget.support.email must be an email address")
    hosts = [urlsplit(link).hostname or "" if isinstance(link, str) else "", str(email).rpartition("@")[2]]
    if any(_is_placeholder_host(h) for h in hosts):
        report.warn(
            "manifest.json: the support contact uses a placeholder domain; "
            "build with --support-link/--support-email before submitting to the marketplace"
        )


def _is_placeholder_host(host: str) -> bool:
    host = host.lower()
    return host.endswith((".example", ".test", ".invalid", ".localhost")) or host in ("example.com", "localhost")


def _require_file(files: dict[str, bytes], path: Any, where: str, report: Report) -> None:
    if not isinstance(path, str) or not path:
        report.error(f"manifest.json: {where} must name a file in the archive")
    elif path.lstrip("/") not in files:
        report.error(f"manifest.json: {where} names {path}, which is not in the archive")


def check_allowed_files(files: dict[str, bytes], locales: list[str], report: Report) -> None:
    for name in files:
        path = PurePosixPath(name)
        allowed = (
            name in ("manifest.json", "script.js", "style.css")
            or (path.parent.as_posix() == "i18n" and path.suffix == ".json" and path.stem in locales)
            or (path.parent.as_posix() == "images" and path.suffix in (".png", ".svg", ".jpg"))
            or (path.parent.as_posix() == "templates" and path.suffix == ".twig")
        )
        if not allowed:
            hint = " (not in widget.locale)" if path.parent.as_posix() == "i18n" else ""
            report.error(
                f"{name}: not expected in a widget archive{hint}; allowed are manifest.json, script.js, "
                "style.css, i18n/<locale>.json, images/*.png|svg|jpg, templates/*.twig"
            )
