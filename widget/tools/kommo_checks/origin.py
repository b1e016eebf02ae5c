"""Our base URL as the built script.js carries it (the ``// build:begin`` … ``// build:end`` block):
Kommo loads only HTTPS content, so http is accepted for loopback (the sandbox) only."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from widget.tools.kommo_checks.report import Report

BUILD_BLOCK = re.compile(r"(?P<indent>[ \t]*)// build:begin[^\n]*\n.*?// build:end[^\n]*", re.S)


def check_build_values(script: str, report: Report) -> None:
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
