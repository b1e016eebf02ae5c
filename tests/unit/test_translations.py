"""Every string a user can see is translated into each of our languages.

The messages are extracted from the current source with Babel (the same ``babel.cfg`` and keywords
as ``scripts/i18n.sh``), so a new ``_("…")`` anywhere fails here until it is translated. English is
the source language: its text is the msgid itself.

To fix a failure: ``./scripts/i18n.sh``, fill the empty ``msgstr`` lines in
``widget/translations/{es,pt,ru}/LC_MESSAGES/messages.po``, then ``./scripts/i18n.sh compile``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from widget.web.i18n import SUPPORTED, normalise

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "widget" / "translations"
TRANSLATED = tuple(lang for lang in SUPPORTED if lang != "en")
FIX = "run ./scripts/i18n.sh, translate the empty msgstr in {po}, then ./scripts/i18n.sh compile"

# The keywords scripts/i18n.sh passes to `pybabel extract` with -k, on top of Babel's defaults
# (_, gettext, ngettext, pgettext, …): Flask-Babel's lazy variants.
KEYWORDS = {
    **DEFAULT_KEYWORDS,
    "lazy_gettext": None,
    "_l": None,
    "lazy_ngettext": (1, 2),
    "lazy_pgettext": ((1, "c"), 2),
}
SKIPPED_DIRS = {"__pycache__", "node_modules", "instance", "dist"}


@dataclass(frozen=True)
class SourceMessage:
    id: str | tuple[str, ...]
    context: str | None
    where: str

    @property
    def label(self) -> str:
        text = self.id if isinstance(self.id, str) else self.id[0]
        prefix = f"[{self.context}] " if self.context else ""
        return f"{prefix}{text!r} ({self.where})"


def _walk_dirs(path: str) -> bool:
    # Babel's default filter also skips "_"-prefixed folders, which would hide templates/_macros
    # and templates/_partials; scripts/i18n.sh replaces it the same way with --ignore-dirs.
    name = Path(path).name
    return not name.startswith(".") and name not in SKIPPED_DIRS


def extract_messages() -> list[SourceMessage]:
    with (ROOT / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: dict[tuple[object, str | None], SourceMessage] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        ROOT, method_map, options_map, keywords=KEYWORDS, directory_filter=_walk_dirs
    ):
        msgid: str | tuple[str, ...] = message if isinstance(message, str) else tuple(message)
        found.setdefault((msgid, context), SourceMessage(msgid, context, f"{filename}:{lineno}"))
    return list(found.values())


@pytest.fixture(scope="module")
def source_messages() -> list[SourceMessage]:
    return extract_messages()


def po_path(lang: str) -> Path:
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def load_po(lang: str) -> Catalog:
    path = po_path(lang)
    if not path.exists():
        pytest.fail(f"{lang}: no catalog at {path.relative_to(ROOT)}; run ./scripts/i18n.sh")
    with path.open("rb") as fh:
        return read_po(fh, locale=lang)


def test_extraction_sees_our_pages_and_not_the_sandbox(source_messages: list[SourceMessage]) -> None:
    # Guards the mapping itself: an empty or misdirected babel.cfg would make every other test
    # here pass vacuously.
    places = {m.where.split(":", 1)[0] for m in source_messages}
    assert any(p.startswith("templates/") for p in places), places
    assert not any(p.startswith(("sandbox/", "templates/sandbox/", "bitrix_app/")) for p in places)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_has_a_confirmed_translation(lang: str, source_messages: list[SourceMessage]) -> None:
    catalog = load_po(lang)
    problems = []
    for src in source_messages:
        entry = catalog.get(src.id, context=src.context)
        if entry is None:
            problems.append(f"{src.label}: not in the catalog")
        elif entry.fuzzy:
            problems.append(f"{src.label}: marked fuzzy (a guess from a changed string; check it, drop the flag)")
        elif isinstance(src.id, tuple):
            forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
            if len(forms) != catalog.num_plurals or not all(forms):
                filled = sum(map(bool, forms))
                problems.append(f"{src.label}: needs all {catalog.num_plurals} plural forms, has {filled}")
        elif not entry.string:
            problems.append(f"{src.label}: empty translation")
    po = po_path(lang).relative_to(ROOT)
    assert not problems, f"{lang}: {len(problems)} untranslated — {FIX.format(po=po)}:\n  " + "\n  ".join(problems)


_PERCENT = re.compile(r"%(?:\((?P<name>\w+)\))?[#0\- +]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?P<conv>[diouxXeEfFgGcrsa%])")
_BRACE = re.compile(r"(?<!\{)\{(?P<name>\w*)(?:[!:][^{}]*)?\}(?!\})")


def placeholders(text: str) -> tuple[frozenset[str], tuple[str, ...], frozenset[str]]:
    """(named %-placeholders, positional %-conversions in order, {}-fields)."""
    named, positional = set(), []
    for m in _PERCENT.finditer(text):
        if m["conv"] == "%":
            continue
        if m["name"]:
            named.add(m["name"])
        else:
            positional.append(m["conv"])
    return frozenset(named), tuple(positional), frozenset(m["name"] for m in _BRACE.finditer(text))


def _translated(catalog: Catalog) -> Iterator[Message]:
    for entry in catalog:
        if entry.id and entry.string and not entry.fuzzy:
            yield entry


@pytest.mark.parametrize("lang", TRANSLATED)
def test_translations_keep_the_placeholders(lang: str) -> None:
    # A dropped or renamed %(name)s shows the user a raw "%(name)s" or raises KeyError at render.
    catalog = load_po(lang)
    problems = []
    for entry in _translated(catalog):
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        source = [placeholders(text) for text in ids]
        expected = (
            frozenset().union(*(s[0] for s in source)),
            source[-1][1],
            frozenset().union(*(s[2] for s in source)),
        )
        forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        for index, form in enumerate(forms):
            if form and placeholders(form) != expected:
                where = f" (plural form {index})" if len(forms) > 1 else ""
                problems.append(f"{ids[0]!r}{where}: {form!r}")
    assert not problems, f"{lang}: placeholders differ from the English text in:\n  " + "\n  ".join(problems)


def _tupled(value: object) -> object:
    # read_mo gives plural ids and forms as lists, read_po as tuples.
    return tuple(value) if isinstance(value, list | tuple) else value


@pytest.mark.parametrize("lang", TRANSLATED)
def test_compiled_catalogs_match_the_po_files(lang: str) -> None:
    # The app reads the .mo files; scripts/setup.sh (run by ./test.sh and .ci/run) and
    # ./scripts/i18n.sh compile them. A stale .mo shows users old or English text.
    catalog = load_po(lang)
    mo = po_path(lang).with_suffix(".mo")
    if not mo.exists():
        pytest.fail(f"{lang}: {mo.relative_to(ROOT)} is missing; run ./scripts/i18n.sh compile")
    with mo.open("rb") as fh:
        compiled = {(_tupled(m.id), m.context): _tupled(m.string) for m in read_mo(fh) if m.id}
    stale = []
    for entry in _translated(catalog):
        if compiled.get((_tupled(entry.id), entry.context)) != _tupled(entry.string):
            stale.append(repr(entry.id))
    for key, string in compiled.items():
        # setup.sh compiles with --use-fuzzy, so a fuzzy entry may be there; it must still match.
        entry = catalog.get(key[0], context=key[1])
        if entry is None or _tupled(entry.string) != string:
            stale.append(repr(key[0]))
    stale = sorted(set(stale))
    assert not stale, f"{lang}: {mo.relative_to(ROOT)} is older than the .po; run ./scripts/i18n.sh compile: {stale}"


@pytest.mark.parametrize(
    ("lang", "heading"),
    [("es", "Algo no ha ido bien"), ("pt", "Algo deu errado"), ("ru", "Что-то пошло не так")],
)
def test_a_page_opened_with_a_crm_language_is_shown_in_it(client, lang: str, heading: str) -> None:
    page = client.get(f"/no-such-page?lang={lang}", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert heading in page.get_data(as_text=True)


def test_a_page_in_an_unsupported_language_falls_back_to_english(client) -> None:
    page = client.get("/no-such-page?lang=de", headers={"Accept": "text/html"})
    assert "Something is not right" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("crm_code", "ours"),
    [
        ("ru", "ru"),
        ("es", "es"),
        ("pt", "pt"),
        ("en", "en"),
        ("br", "pt"),  # Bitrix24: Brazilian Portuguese
        ("la", "es"),  # Bitrix24: Latin-American Spanish
        ("pt-BR", "pt"),
        ("pt_BR", "pt"),
        ("ES", "es"),
        (" ru ", "ru"),
        ("de", "en"),
        ("ua", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_crm_language_codes_map_to_our_languages(crm_code: str | None, ours: str) -> None:
    assert normalise(crm_code) == ours
