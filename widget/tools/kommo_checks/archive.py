"""Reading a widget archive (a source folder or a widget.zip) and running every check on it:
structure and manifest (reference kommo.md §4), naming and files for moderation (§8), the code
rules for script.js and style.css."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path, PurePosixPath

from widget.tools.kommo_checks.code_checks import check_css, check_script
from widget.tools.kommo_checks.i18n import check_locales, load_i18n, require_i18n
from widget.tools.kommo_checks.manifest import check_allowed_files, check_manifest
from widget.tools.kommo_checks.moderation import check_images, check_naming
from widget.tools.kommo_checks.origin import check_build_values
from widget.tools.kommo_checks.report import Report

TEXT_SUFFIXES = {".json", ".js", ".css", ".twig", ".svg"}


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
    locales = check_locales(manifest, report)
    langs = load_i18n(texts, locales, report)
    keys = check_manifest(manifest, files, report)
    check_allowed_files(files, locales, report)
    for key in keys:
        require_i18n(langs, key, "manifest.json", report, want_text=True)
    check_naming(manifest, langs, report)
    check_images(files, report)
    if "script.js" in texts:
        problems, script_keys = check_script(texts["script.js"], manifest)
        report.errors += problems
        for key in script_keys:
            require_i18n(langs, key, "script.js", report, want_text=False)
        check_build_values(texts["script.js"], report)
    if "style.css" in texts:
        report.errors += check_css(texts["style.css"], texts.get("script.js", ""))


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
