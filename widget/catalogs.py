"""Compiled translations (``.mo``) beside their sources (``.po``), however the server was started.

The ``.mo`` files are build output and not committed. ``scripts/setup.sh`` compiles them, but
``gunicorn server:app`` or ``python server.py`` on a plain checkout would otherwise serve English to
everyone. ``compiled_catalogs`` runs in ``create_app``: when every catalog is current it costs two
``stat`` calls per language; otherwise it compiles the ones that are missing or older than their
``.po`` (tens of milliseconds, once).

Several processes may start at once (gunicorn workers, job workers). Each writes a file of its own
and renames it over the catalog, so no reader ever sees half a file, and the last of the identical
copies wins. A read-only checkout (a container image built without running setup) compiles into
the instance folder instead.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

DOMAIN = "messages"


def compiled_catalogs(source: str, fallback: str) -> str:
    """The folder Flask-Babel should read: ``source`` once its catalogs are current, or ``fallback``
    (compiled there) when ``source`` cannot be written. Never raises: at worst English shows."""
    sources = _sources(Path(source))
    if not _stale(sources, Path(source)):
        return source
    try:
        _compile_all(sources, Path(source))
        return source
    except OSError as exc:
        log.info("translations: cannot compile into %s (%s); using %s", source, exc, fallback)
    try:
        if _stale(sources, Path(fallback)):
            _compile_all(sources, Path(fallback))
        return fallback
    except OSError as exc:
        log.warning("translations: cannot compile the catalogs (%s); pages show in English", exc)
        return source


def _sources(root: Path) -> dict[str, Path]:
    """Language → its ``.po``."""
    found = {}
    for po in sorted(root.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        found[po.parent.parent.name] = po
    return found


def _target(root: Path, lang: str) -> Path:
    return root / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"


def _stale(sources: dict[str, Path], root: Path) -> list[str]:
    stale = []
    for lang, po in sources.items():
        try:
            current = _target(root, lang).stat().st_mtime_ns >= po.stat().st_mtime_ns
        except FileNotFoundError:
            current = False
        if not current:
            stale.append(lang)
    return stale


def _compile_all(sources: dict[str, Path], root: Path) -> None:
    for lang in _stale(sources, root):
        _compile(lang, sources[lang], _target(root, lang))


def _compile(lang: str, po: Path, mo: Path) -> None:
    # As `pybabel compile` does: entries marked fuzzy (unconfirmed) are left out, English shows.
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=DOMAIN)
    mo.parent.mkdir(parents=True, exist_ok=True)
    partial = mo.with_name(f".{mo.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with partial.open("wb") as fh:
            write_mo(fh, catalog, use_fuzzy=False)
        os.replace(partial, mo)
    finally:
        partial.unlink(missing_ok=True)
    log.info("translations: compiled %s", mo)
