"""Build and check the Kommo widget archive (reference kommo.md §4 structure, §8 marketplace rules).

    python -m widget.tools.kommo_widget images   [--out-dir kommo_manifest/images]
    python -m widget.tools.kommo_widget build    [--origin https://…] [--out dist/widget.zip]
    python -m widget.tools.kommo_widget validate [kommo_manifest | dist/widget.zip]

``build`` checks the source, writes our origin (``--origin``, default ``PUBLIC_URL``) into
``script.js``, packs ``widget.zip`` with the files at the archive root and checks the result.
``build`` and ``validate`` exit non-zero and say what to fix when something would fail Kommo's
upload or moderation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

from widget.tools import png
from widget.tools.kommo_checks.archive import read_folder, validate_path
from widget.tools.kommo_checks.origin import BUILD_BLOCK, check_origin
from widget.tools.kommo_checks.report import Report

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "kommo_manifest"
DEFAULT_OUT = ROOT / "dist" / "widget.zip"

# Logo sizes are not published for the zip (reference "Uncertain"); these follow the
# marketplace branding sizes, one per file.
LOGO_SIZES = {
    "logo.png": (130, 100),
    "logo_main.png": (400, 272),
    "logo_medium.png": (240, 84),
    "logo_min.png": (84, 84),
    "logo_small.png": (108, 108),
}
BRAND: png.Rgb = (0x1E, 0x9E, 0x55)
WHITE: png.Rgb = (0xFF, 0xFF, 0xFF)
KOMMO_DARK: png.Rgb = (0x15, 0x30, 0x43)  # §8: icons need contrast >= 3.0 against white and this


# --- build ---------------------------------------------------------------------------------


def default_origin(env: dict[str, str]) -> str:
    # Mirrors widget.config: PUBLIC_URL, else the embedded default address.
    return env.get("PUBLIC_URL") or f"http://{env.get('HOST') or '127.0.0.1'}:{env.get('PORT') or 5000}"


def build(
    out: Path,
    origin: str,
    *,
    source: Path = SOURCE,
    support_link: str | None = None,
    support_email: str | None = None,
) -> Report:
    """Pack ``source`` into ``out``; nothing is written unless the source and the result pass."""
    report = Report()
    try:
        origin = check_origin(origin)
    except ValueError as exc:
        report.error(f"--origin {exc}")
    checked = validate_path(source)
    report.errors += checked.errors
    if report.errors:
        return report
    files = read_folder(source)
    manifest = json.loads(files["manifest.json"])
    support = manifest["widget"]["support"]
    support["link"] = support_link or support["link"]
    support["email"] = support_email or support["email"]
    files["manifest.json"] = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
    script = files["script.js"].decode()
    if len(BUILD_BLOCK.findall(script)) != 1:
        report.error('script.js: needs exactly one "// build:begin" … "// build:end" block for the build values')
        return report
    files["script.js"] = BUILD_BLOCK.sub(
        lambda m: _build_block(m.group("indent"), origin, support["email"]), script, count=1
    ).encode()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible archives
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])
    built = validate_path(tmp)
    # Warnings about the source (its development origin) do not apply to the archive.
    report.warnings = built.warnings
    report.errors += [f"{out.name}: {e}" for e in built.errors]
    if report.errors:
        tmp.unlink()
    else:
        tmp.replace(out)
    return report


def _build_block(indent: str, origin: str, support_email: str) -> str:
    inner = indent + "  "
    return (
        f"{indent}// build:begin — written by `python -m widget.tools.kommo_widget build`\n"
        f"{indent}var BUILD = {{\n"
        f"{inner}origin: {json.dumps(origin)},\n"
        f"{inner}supportEmail: {json.dumps(support_email)}\n"
        f"{indent}}};\n"
        f"{indent}// build:end"
    )


# --- images --------------------------------------------------------------------------------


def draw_logo(width: int, height: int) -> bytes:
    """A green rounded tile with a white speech bubble, centred on a transparent canvas."""
    side = min(width, height) * (0.92 if width == height else 0.8)
    cx, cy = width / 2, height / 2
    tile = png.rounded_rect(cx, cy, side / 2, side / 2, side * 0.22)
    body = png.rounded_rect(cx, cy - side * 0.05, side * 0.31, side * 0.21, side * 0.1)
    tail = png.convex_polygon(
        [(cx - side * 0.24, cy + side * 0.04), (cx - side * 0.05, cy + side * 0.1), (cx - side * 0.27, cy + side * 0.3)]
    )
    dots = png.union(*(png.circle(cx + dx * side, cy - side * 0.05, side * 0.045) for dx in (-0.14, 0.0, 0.14)))
    return png.render(width, height, [(tile, BRAND), (png.union(body, tail), WHITE), (dots, BRAND)])


_BRAND_HEX = "#{:02X}{:02X}{:02X}".format(*BRAND)
# A speech bubble with three dots; the brand green reads on both the light and the dark menu.
MENU_ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24">\n'
    f'  <path fill="{_BRAND_HEX}" d="M5 3h14a3 3 0 0 1 3 3v9a3 3 0 0 1-3 3h-9l-5 4v-4'
    'a3 3 0 0 1-3-3V6a3 3 0 0 1 3-3z"/>\n'
    + "".join(f'  <circle cx="{x}" cy="10.5" r="1.4" fill="#FFFFFF"/>\n' for x in (8, 12, 16))
    + "</svg>\n"
)


def write_images(out_dir: Path) -> list[Path]:
    # The brand colour must stay readable in Kommo's light and dark themes (§8).
    assert min(png.contrast(BRAND, WHITE), png.contrast(BRAND, KOMMO_DARK)) >= 3.0
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (width, height) in LOGO_SIZES.items():
        path = out_dir / name
        path.write_bytes(draw_logo(width, height))
        written.append(path)
    icon = out_dir / "menu_icon.svg"
    icon.write_text(MENU_ICON, encoding="utf-8", newline="\n")
    written.append(icon)
    return written


# --- command line --------------------------------------------------------------------------


def _print(report: Report, ok: str) -> int:
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    if report.errors:
        print(f"{len(report.errors)} problem(s) found; nothing to upload until they are fixed.", file=sys.stderr)
        return 1
    print(ok)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m widget.tools.kommo_widget", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    images = commands.add_parser("images", help="draw the logo PNGs and the menu icon")
    images.add_argument("--out-dir", type=Path, default=SOURCE / "images")
    build_cmd = commands.add_parser("build", help="pack and check widget.zip")
    build_cmd.add_argument("--origin", default=None, help="our public base URL (default: PUBLIC_URL)")
    build_cmd.add_argument("--out", type=Path, default=DEFAULT_OUT)
    build_cmd.add_argument("--source", type=Path, default=SOURCE)
    build_cmd.add_argument("--support-link", default=None, help="overrides widget.support.link")
    build_cmd.add_argument("--support-email", default=None, help="overrides widget.support.email")
    validate = commands.add_parser("validate", help="check a source folder or a widget.zip")
    validate.add_argument("path", type=Path, nargs="?", default=SOURCE)
    args = parser.parse_args(argv)

    if args.command == "images":
        for path in write_images(args.out_dir):
            print(f"{path} ({path.stat().st_size} bytes)")
        return 0
    if args.command == "build":
        origin = args.origin or default_origin(dict(os.environ))
        report = build(
            args.out, origin, source=args.source, support_link=args.support_link, support_email=args.support_email
        )
        return _print(report, f"built {args.out} for {origin}")
    return _print(validate_path(args.path), f"{args.path}: ok")


if __name__ == "__main__":
    sys.exit(main())
