"""Translations compiled at start: missing or stale catalogs are compiled, current ones left alone,
several processes starting at once all read a whole catalog, a read-only checkout uses the instance
folder."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from babel.support import Translations

from widget import catalogs
from widget.catalogs import compiled_catalogs

SOURCE = Path(__file__).resolve().parents[2] / "widget" / "translations"
HEADING = "Something is not right"


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """The translations folder as git has it: sources only."""
    root = tmp_path / "translations"
    for po in SOURCE.glob("*/LC_MESSAGES/messages.po"):
        target = root / po.relative_to(SOURCE)
        target.parent.mkdir(parents=True)
        shutil.copy(po, target)
    return root


def _says(root: str | Path, lang: str) -> str:
    return Translations.load(str(root), [lang]).gettext(HEADING)


def test_missing_catalogs_are_compiled(plain: Path, tmp_path: Path):
    assert compiled_catalogs(str(plain), str(tmp_path / "fallback")) == str(plain)
    assert _says(plain, "es") == "Algo no ha ido bien"
    assert _says(plain, "pt") == "Algo deu errado"
    assert _says(plain, "ru") == "Что-то пошло не так"
    assert not (tmp_path / "fallback").exists()


def test_a_catalog_older_than_its_source_is_compiled_again_and_a_current_one_is_left_alone(plain: Path, tmp_path: Path):
    compiled_catalogs(str(plain), str(tmp_path / "fallback"))
    es_mo = plain / "es" / "LC_MESSAGES" / "messages.mo"
    pt_mo = plain / "pt" / "LC_MESSAGES" / "messages.mo"
    pt_before = pt_mo.stat().st_mtime_ns
    es_po = plain / "es" / "LC_MESSAGES" / "messages.po"
    es_po.write_text(es_po.read_text().replace('"Algo no ha ido bien"', '"Algo falló"'))
    os.utime(es_mo, ns=(es_po.stat().st_mtime_ns - 10**9,) * 2)  # the .po edited after the last compile
    compiled_catalogs(str(plain), str(tmp_path / "fallback"))
    assert _says(plain, "es") == "Algo falló"
    assert pt_mo.stat().st_mtime_ns == pt_before


def test_a_read_only_checkout_compiles_into_the_instance_folder(
    plain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    real = catalogs._compile

    def refuse_source(lang: str, po: Path, mo: Path) -> None:
        if plain in mo.parents:  # tests run as root, which chmod cannot stop
            raise PermissionError(13, "Read-only file system", str(mo))
        real(lang, po, mo)

    monkeypatch.setattr(catalogs, "_compile", refuse_source)
    fallback = tmp_path / "instance" / "translations"
    assert compiled_catalogs(str(plain), str(fallback)) == str(fallback)
    assert _says(fallback, "es") == "Algo no ha ido bien"
    assert not list(plain.rglob("*.mo"))


def _start(root: str, fallback: str, gate: Any, results: Any) -> None:
    gate.wait()
    used = compiled_catalogs(root, fallback)
    results.put((used, _says(used, "ru")))


def test_processes_starting_together_all_read_a_whole_catalog(plain: Path, tmp_path: Path):
    """Gunicorn's workers start at once on a checkout without catalogs."""
    ctx = multiprocessing.get_context("spawn")
    n = 6
    gate, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_start, args=(str(plain), str(tmp_path / "fb"), gate, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    outcomes = [results.get(timeout=5) for _ in range(n)]
    assert outcomes == [(str(plain), "Что-то пошло не так")] * n
    assert [p.exitcode for p in procs] == [0] * n
    assert not list(plain.rglob("*.tmp"))
