"""Checks a Kommo widget archive (a source folder or a widget.zip) against Kommo's rules:
structure and manifest (reference kommo.md §4), naming and files for moderation (§8).

Every message names the file and says what to change; ``Report.errors`` block an upload,
``Report.warnings`` are worth a look before submitting to the marketplace.
"""

from __future__ import annotations

import ipaddress
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from widget.tools import png
from widget.tools.kommo_code_checks import check_css, check_script

# §4.2: languages a Kommo widget may declare.
KOMMO_LOCALES = {"en", "es", "pt", "tr", "id"}
# §4.3. The -0/-1 suffix switches the right-hand panel in cards (and lists) off/on.
LOCATIONS = {
    "settings", "advanced_settings", "card_sdk", "catalogs", "digital_pipeline", "lead_sources",
    "widget_page", "sms", "mobile_card", "salesbot_designer", "website_chat_button", "ai_agent", "everywhere",
}  # fmt: skip
PANEL_LOCATIONS = {"lcard", "ccard", "comcard", "llist", "clist", "tlist"}
LEFT_MENU_AFTER = {"dashboard", "leads", "customers", "tasks", "catalogs", "mail", "stats", "settings"}
SETTING_TYPES = {"text", "pass", "users", "users_lp", "custom"}
# §4.1: the moderation checklist's logo files; each at most 300 KB.
REQUIRED_LOGOS = ("logo.png", "logo_main.png", "logo_medium.png", "logo_min.png", "logo_small.png")
MAX_IMAGE_BYTES = 300 * 1024
TEXT_SUFFIXES = {".json", ".js", ".css", ".twig", ".svg"}
BUILD_BLOCK = re.compile(r"(?P<indent>[ \t]*)// build:begin[^\n]*\n.*?// build:end[^\n]*", re.S)


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


# --- reading a source folder or a zip ------------------------------------------------------


def read_folder(folder: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def read_zip(archive: Path, report: Report) -> dict[str, bytes]:
    files = {}
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir():
                continue
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or "\\" in name:
                report.error(f"{name}: unsafe path inside the archive")
                continue
            files[name] = zf.read(info)
    if "manifest.json" not in files:
        nested = [n for n in files if n.endswith("/manifest.json")]
        if nested:
            report.error(
                f"manifest.json is inside {nested[0].rsplit('/', 1)[0]}/: Kommo wants the files at the archive root"
            )
    return files


# --- validation ----------------------------------------------------------------------------


def validate_path(path: Path) -> Report:
    report = Report()
    if path.is_dir():
        files = read_folder(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        files = read_zip(path, report)
    else:
        report.error(f"{path}: neither a widget source folder nor a zip archive")
        return report
    validate_files(files, report)
    return report


def validate_files(files: dict[str, bytes], report: Report) -> None:
    texts = _decode_texts(files, report)
    if "manifest.json" not in texts:
        report.error("manifest.json is missing: it is the one file every widget needs")
        return
    try:
        manifest = json.loads(texts["manifest.json"])
    except ValueError as exc:
        report.error(f"manifest.json is not valid JSON: {exc}")
        return
    if not isinstance(manifest, dict) or not isinstance(manifest.get("widget"), dict):
        report.error('manifest.json: needs a "widget" object')
        return
    locales = _check_locales(manifest, report)
    langs = _load_i18n(texts, locales, report)
    keys = _check_manifest(manifest, files, report)
    _check_allowed_files(files, locales, report)
    for key in keys:
        _require_i18n(langs, key, "manifest.json", report, want_text=True)
    _check_naming(manifest, langs, report)
    _check_images(files, report)
    if "script.js" in texts:
        problems, script_keys = check_script(texts["script.js"], manifest)
        report.errors += problems
        for key in script_keys:
            _require_i18n(langs, key, "script.js", report, want_text=False)
        _check_build_values(texts["script.js"], report)
    if "style.css" in texts:
        report.errors += check_css(texts["style.css"], texts.get("script.js", ""))


def _check_build_values(script: str, report: Report) -> None:
    block = BUILD_BLOCK.search(script)
    origin = re.search(r'\borigin:\s*"([^"]*)"', block.group(0)) if block else None
    if origin is None:
        report.error('script.js: the "// build:begin" … "// build:end" block with BUILD.origin is missing')
        return
    try:
        url = check_origin(origin.group(1))
    except ValueError as exc:
        report.error(f"script.js: BUILD.origin {exc}")
        return
    if is_loopback(urlsplit(url).hostname or ""):
        report.warn(f"script.js: BUILD.origin {url} is a loopback address, fine for the sandbox only")


def _decode_texts(files: dict[str, bytes], report: Report) -> dict[str, str]:
    texts = {}
    for name, data in files.items():
        if PurePosixPath(name).suffix not in TEXT_SUFFIXES:
            continue
        if data.startswith(b"\xef\xbb\xbf"):
            report.error(f"{name}: starts with a byte-order mark; save it as UTF-8 without BOM")
        if b"\r" in data:
            report.error(f"{name}: has Windows (CRLF) line endings; Kommo wants Unix line endings")
        try:
            texts[name] = data.decode("utf-8").lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            report.error(f"{name}: is not UTF-8 ({exc.reason} at byte {exc.start})")
    return texts


def _check_locales(manifest: dict[str, Any], report: Report) -> list[str]:
    locales = manifest["widget"].get("locale")
    if not isinstance(locales, list) or not locales or not all(isinstance(x, str) for x in locales):
        report.error('manifest.json: widget.locale must list the languages, e.g. ["en", "es", "pt"]')
        return []
    for lang in locales:
        if lang not in KOMMO_LOCALES:
            report.error(f"manifest.json: widget.locale {lang!r} is not a Kommo language ({sorted(KOMMO_LOCALES)})")
    return [x for x in locales if x in KOMMO_LOCALES]


def _load_i18n(texts: dict[str, str], locales: list[str], report: Report) -> dict[str, dict[str, Any]]:
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


def _lookup(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _require_i18n(langs: dict[str, dict[str, Any]], key: str, where: str, report: Report, *, want_text: bool) -> None:
    for lang, data in langs.items():
        value = _lookup(data, key)
        if value is None or (want_text and not isinstance(value, str)):
            report.error(f"i18n/{lang}.json: {where} uses the key {key}, which is missing here")


def _i18n_key(value: Any, where: str, report: Report) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"\w+(\.\w+)+", value):
        return value
    report.error(f"manifest.json: {where} must be an i18n key such as widget.name, not {value!r}")
    return None


def _check_manifest(manifest: dict[str, Any], files: dict[str, bytes], report: Report) -> list[str]:
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


def _check_allowed_files(files: dict[str, bytes], locales: list[str], report: Report) -> None:
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


_NAME_VIA = re.compile(r"\S\s+v[ií]a\s+\S", re.I)
_ANCHOR = re.compile(r"<a\b[^>]*>", re.I)


def _check_naming(manifest: dict[str, Any], langs: dict[str, dict[str, Any]], report: Report) -> None:
    """§8 naming and branding, checked on the texts each language shows."""
    widget = manifest["widget"]
    for lang, data in langs.items():
        where = f"i18n/{lang}.json"
        name = _lookup(data, str(widget.get("name")))
        short = _lookup(data, str(widget.get("short_description")))
        description = _lookup(data, str(widget.get("description")))
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


def _check_images(files: dict[str, bytes], report: Report) -> None:
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


def check_origin(url: str) -> str:
    """Our base URL as script.js will call it; ``ValueError`` explains a bad one."""
    parts = urlsplit(url.strip())
    if parts.query or parts.fragment or not parts.hostname:
        raise ValueError(f"{url!r}: give a plain address such as https://chats.example.com")
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname)):
        raise ValueError(f"{url!r}: Kommo loads only HTTPS content (http is accepted for loopback only)")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
