"""The Kommo widget archive: the source passes Kommo's rules, the build produces an uploadable
zip, and the checks catch the slips that would fail an upload or moderation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from widget.tools import png
from widget.tools.kommo_checks.archive import validate_path
from widget.tools.kommo_widget import LOGO_SIZES, SOURCE, build, draw_logo

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")
ORIGIN = "https://chats.wazzup-crm.example.com"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A private copy of kommo_manifest/ to break on purpose."""
    return Path(shutil.copytree(SOURCE, tmp_path / "kommo_manifest"))


@pytest.fixture
def built(tmp_path: Path) -> Path:
    out = tmp_path / "dist" / "widget.zip"
    report = build(out, ORIGIN, support_link="https://help.wazzup-crm.com", support_email="help@wazzup-crm.com")
    assert report.errors == []
    return out


def test_the_source_folder_passes_every_check() -> None:
    report = validate_path(SOURCE)
    assert report.errors == []


def test_the_built_zip_is_uploadable(built: Path) -> None:
    with zipfile.ZipFile(built) as zf:
        names = set(zf.namelist())
        texts = {n: zf.read(n) for n in names if n.endswith((".json", ".js", ".css", ".svg"))}
        script = zf.read("script.js").decode()
        manifest = json.loads(zf.read("manifest.json"))
    # Kommo wants the files at the archive root, not inside a folder.
    assert {"manifest.json", "script.js", "style.css", "i18n/en.json", "i18n/es.json", "i18n/pt.json"} <= names
    assert {f"images/{logo}" for logo in LOGO_SIZES} <= names
    for name, data in texts.items():
        assert not data.startswith(b"\xef\xbb\xbf"), name
        assert b"\r" not in data, name
    # The build wrote our origin and the support contact in.
    assert f'origin: "{ORIGIN}"' in script
    assert manifest["widget"]["support"] == {"link": "https://help.wazzup-crm.com", "email": "help@wazzup-crm.com"}
    report = validate_path(built)
    assert report.errors == []
    assert report.warnings == []


def test_building_twice_gives_the_same_archive(tmp_path: Path, built: Path) -> None:
    again = tmp_path / "again.zip"
    build(again, ORIGIN, support_link="https://help.wazzup-crm.com", support_email="help@wazzup-crm.com")
    assert again.read_bytes() == built.read_bytes()


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


DEFECTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "a key missing in one locale": (
        lambda s: _edit_json(s / "i18n/es.json", lambda d: d["errors"].pop("retry")),
        "i18n/es.json: missing key errors.retry (present in en.json)",
    ),
    "a key the manifest uses missing everywhere": (
        lambda s: [_edit_json(s / f"i18n/{lang}.json", lambda d: d.pop("advanced")) for lang in ("en", "es", "pt")],
        "i18n/pt.json: manifest.json uses the key advanced.title, which is missing here",
    ),
    "a key the script uses missing everywhere": (
        lambda s: _edit_text(s / "script.js", "i18nText('errors.retry')", "i18nText('errors.try_again')"),
        "i18n/en.json: script.js uses the key errors.try_again, which is missing here",
    ),
    "a missing logo": (
        lambda s: (s / "images/logo_min.png").unlink(),
        "images/logo_min.png is missing",
    ),
    "a logo that is not a PNG": (
        lambda s: (s / "images/logo_small.png").write_bytes(b"GIF89a not a png"),
        "images/logo_small.png: not a PNG file",
    ),
    "eval in script.js": (
        lambda s: _edit_text(s / "script.js", "var self = this;", "var self = this;\n    eval('1 + 1');"),
        "eval() is forbidden",
    ),
    "console.log outside a catch block": (
        lambda s: _edit_text(s / "script.js", "var mine = generation;", "var mine = generation;\n console.log(1);"),
        "console.* is allowed only in catch blocks",
    ),
    "$authorizedAjax in a loop": (
        lambda s: _edit_text(
            s / "script.js",
            "function openPage(location) {",
            "function openPage(location) {\n for (var i = 0; i < 2; i += 1) { self.$authorizedAjax({}); }",
        ),
        "$authorizedAjax must not be called in a loop",
    ),
    "synchronous XHR": (
        lambda s: _edit_text(s / "script.js", "type: 'POST',", "type: 'POST',\n        async: false,"),
        "synchronous XHR is forbidden",
    ),
    "writing to APP": (
        lambda s: _edit_text(s / "script.js", "var leadId", "APP.data.current_card = null;\n      var leadId"),
        "APP is read-only",
    ),
    "a minified line": (
        lambda s: _edit_text(s / "script.js", "'use strict';", "'use strict';" + " var a = 1;" * 30),
        "ship readable code",
    ),
    "a global CSS rule": (
        lambda s: _edit_text(s / "style.css", ".wazzup-chats .wazzup-chats__frame {", ".wazzup-chats .x, button {"),
        "'button' is not scoped under .wazzup-chats",
    ),
    "left_menu without widget_page": (
        lambda s: _edit_json(s / "manifest.json", lambda d: d["locations"].remove("widget_page")),
        "left_menu works only with the widget_page location",
    ),
    "a location Kommo does not know": (
        lambda s: _edit_json(s / "manifest.json", lambda d: d["locations"].append("lead_card")),
        "location 'lead_card' is not one Kommo knows",
    ),
    "interface version 1": (
        lambda s: _edit_json(s / "manifest.json", lambda d: d["widget"].update(interface_version=1)),
        "interface_version must be 2",
    ),
    "installation without settings": (
        lambda s: _edit_json(s / "manifest.json", lambda d: d["widget"].update(installation=True)),
        "installation is true but no settings fields are declared",
    ),
    "Kommo in the widget name": (
        lambda s: _edit_json(s / "i18n/en.json", lambda d: d["widget"].update(name="Kommo chats via Wazzup")),
        "the widget name must not contain Kommo",
    ),
    "a file Kommo does not accept": (
        lambda s: (s / "notes.txt").write_text("todo\n"),
        "notes.txt: not expected in a widget archive",
    ),
    "Windows line endings": (
        lambda s: (s / "style.css").write_bytes((s / "style.css").read_bytes().replace(b"\n", b"\r\n")),
        "style.css: has Windows (CRLF) line endings",
    ),
    "a byte-order mark": (
        lambda s: (s / "i18n/pt.json").write_bytes(b"\xef\xbb\xbf" + (s / "i18n/pt.json").read_bytes()),
        "i18n/pt.json: starts with a byte-order mark",
    ),
    "a locale copied from English": (
        lambda s: shutil.copy(s / "i18n/en.json", s / "i18n/pt.json"),
        "texts are the same as in en.json; translate them",
    ),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_validation_catches(defect: str, source: Path) -> None:
    seed, expected = DEFECTS[defect]
    seed(source)
    errors = validate_path(source).errors
    assert any(expected in error for error in errors), errors


def test_a_broken_source_builds_nothing(source: Path, tmp_path: Path) -> None:
    DEFECTS["eval in script.js"][0](source)
    out = tmp_path / "widget.zip"
    report = build(out, ORIGIN, source=source)
    assert any("eval() is forbidden" in error for error in report.errors)
    assert not out.exists()


def test_a_zip_with_a_top_level_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "widget.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(SOURCE.rglob("*")):
            if path.is_file():
                zf.write(path, f"widget/{path.relative_to(SOURCE).as_posix()}")
    errors = validate_path(archive).errors
    assert any("manifest.json is inside widget/" in error for error in errors), errors


@pytest.mark.parametrize(
    "origin", ["http://chats.wazzup-crm.example.com", "https://chats.wazzup-crm.example.com/?x=1", "chats"]
)
def test_build_refuses_an_origin_kommo_cannot_load(origin: str, tmp_path: Path) -> None:
    report = build(tmp_path / "widget.zip", origin)
    assert any(error.startswith("--origin") for error in report.errors), report.errors


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "widget.tools.kommo_widget", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_the_commands_exit_non_zero_and_say_what_to_fix(source: Path, tmp_path: Path) -> None:
    (source / "images/logo.png").unlink()
    result = _cli("validate", str(source))
    assert result.returncode == 1
    assert "images/logo.png is missing" in result.stderr

    out = tmp_path / "w.zip"
    result = _cli("build", "--source", str(source), "--origin", ORIGIN, "--out", str(out))
    assert result.returncode == 1
    assert not out.exists()

    out = tmp_path / "ok.zip"
    result = _cli("build", "--origin", ORIGIN, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert _cli("validate", str(out)).returncode == 0


def test_build_takes_the_origin_from_public_url(tmp_path: Path) -> None:
    out = tmp_path / "w.zip"
    env = {"PATH": "/usr/bin:/bin", "PUBLIC_URL": "https://wazzup.partner-crm.example.org/"}
    result = subprocess.run(
        [sys.executable, "-m", "widget.tools.kommo_widget", "build", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as zf:
        assert 'origin: "https://wazzup.partner-crm.example.org"' in zf.read("script.js").decode()


def test_the_committed_logos_are_the_generated_ones() -> None:
    # `python -m widget.tools.kommo_widget images` regenerates them; the brand green keeps a
    # contrast of at least 3.0 on Kommo's light and dark backgrounds (§8).
    for name, size in LOGO_SIZES.items():
        data = (SOURCE / "images" / name).read_bytes()
        assert png.png_size(data) == size
        assert len(data) <= 300 * 1024
        assert data == draw_logo(*size), f"{name} differs from what the images command draws"


@pytest.mark.skipif(NODE is None, reason="node is not installed, so script.js cannot be syntax-checked")
def test_script_js_is_valid_javascript(built: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(built) as zf:
        (tmp_path / "built.js").write_bytes(zf.read("script.js"))
    for script in (SOURCE / "script.js", tmp_path / "built.js"):
        result = subprocess.run([NODE, "--check", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_the_manifest_declares_what_the_script_serves() -> None:
    manifest = json.loads((SOURCE / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["widget"]["interface_version"] == 2
    assert set(manifest["locations"]) == {"settings", "advanced_settings", "widget_page", "lcard-1"}
    item = manifest["left_menu"]["wazzup_chats"]
    titles = {
        lang: json.loads((SOURCE / f"i18n/{lang}.json").read_text(encoding="utf-8"))["left_menu"]["wazzup_chats"]
        for lang in ("en", "es", "pt")
    }
    assert item["title"] == "left_menu.wazzup_chats" and titles["en"] == "Wazzup chats"
    assert item["sort"] == {"after": "leads"}
    assert re.fullmatch(r"images/\w+\.svg", item["icon"])


# --- script.js in a stand-in Kommo page (tests/unit/kommo_widget_harness.js) ---------------

HARNESS = Path(__file__).with_name("kommo_widget_harness.js")
LAUNCH = f"{ORIGIN}/app/launch?lt=one-time"
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed, so script.js cannot be run")


@pytest.fixture
def run_widget(built: Path, tmp_path: Path) -> Callable[..., dict]:
    with zipfile.ZipFile(built) as zf:
        zf.extractall(tmp_path / "unpacked")

    def run(scenario: str, lang: str = "en") -> dict:
        unpacked = tmp_path / "unpacked"
        result = subprocess.run(
            [NODE or "node", str(HARNESS), str(unpacked / "script.js"), str(unpacked / f"i18n/{lang}.json"), scenario],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return run


def texts(lang: str) -> dict:
    return json.loads((SOURCE / f"i18n/{lang}.json").read_text(encoding="utf-8"))


def session_request(body: dict) -> dict:
    return {
        "url": f"{ORIGIN}/kommo/session",
        "type": "POST",
        "contentType": "application/json",
        "body": body,
    }


@needs_node
@pytest.mark.parametrize(
    ("scenario", "location"), [("menu_page", "widget_page"), ("advanced_settings", "advanced_settings")]
)
def test_our_page_opens_in_the_widget_work_area(run_widget, scenario: str, location: str) -> None:
    seen = run_widget(scenario)
    assert seen["render"] is seen["init"] is seen["bind_actions"] is seen["returned"] is True
    assert seen["requests"] == [session_request({"location": location})]
    assert [frame["src"] for frame in seen["page"]["frames"]] == [LAUNCH]
    # Our page may run its own scripts and forms but not navigate Kommo's page.
    assert "allow-top-navigation" not in seen["page"]["frames"][0]["sandbox"]
    assert seen["stylesheets"] == ["/widgets/wz_test/style.css?v=1.0.0"]


@needs_node
def test_the_lead_card_panel_shows_that_leads_chats(run_widget) -> None:
    seen = run_widget("card")
    assert seen["requests"] == [session_request({"location": "lcard", "entity_type": "lead", "entity_id": 4242})]
    assert [frame["src"] for frame in seen["page"]["frames"]] == [LAUNCH]


@needs_node
def test_a_lead_not_saved_yet_asks_to_save_it_first(run_widget) -> None:
    seen = run_widget("new_card")
    assert seen["requests"] == []
    assert seen["page"]["text"] == texts("en")["panel"]["unsaved_card"]


@needs_node
def test_a_refused_session_explains_why_in_the_users_language_and_can_be_retried(run_widget) -> None:
    es = texts("es")["errors"]
    seen = run_widget("refused", lang="es")
    page = seen["page"]
    assert page["frames"] == []
    assert es["title"] in page["text"] and es["denied"] in page["text"]
    assert f"{es['reason']} The integration is not installed in this Kommo account." in page["text"]
    # §8: an error shows the integrator's contact.
    assert page["links"] == ["mailto:help@wazzup-crm.com"]
    assert page["buttons"] == [es["retry"]]
    assert len(seen["requests"]) == 2
    assert seen["after_retry"]["text"] == texts("es")["panel"]["loading"]
    assert [frame["src"] for frame in seen["after_success"]["frames"]] == [LAUNCH]


@needs_node
def test_no_answer_from_our_server_says_so(run_widget) -> None:
    seen = run_widget("offline")
    assert texts("en")["errors"]["network"] in seen["page"]["text"]


@needs_node
def test_only_our_own_pages_are_ever_framed(run_widget) -> None:
    seen = run_widget("foreign_url")
    assert seen["page"]["frames"] == []
    assert texts("en")["errors"]["title"] in seen["page"]["text"]


@needs_node
def test_an_answer_arriving_after_the_user_left_is_dropped(run_widget) -> None:
    seen = run_widget("left_before_answer")
    assert seen["page"]["frames"] == []


@needs_node
def test_the_settings_modal_explains_where_things_are_and_keeps_kommos_save_button_last(run_widget) -> None:
    seen = run_widget("settings_modal")
    assert seen["returned"] is True and seen["on_save"] is True
    assert texts("en")["settings"]["intro"] in seen["page"]["text"]
    assert seen["order"] == ["wazzup-chats wazzup-chats--settings", "kommo-save"]
