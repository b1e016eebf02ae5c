"""The languages our pages and messages speak, and how a CRM's language code maps onto them.

Pure: the web layer picks a page's language with it, the services the language of what they write
for a person outside a request (the test client's message).
"""

from __future__ import annotations

SUPPORTED = ("en", "es", "pt", "ru")


def normalise(lang: str | None) -> str:
    """One of ``SUPPORTED`` for a CRM's language code ("es", "pt_BR", Bitrix24's "la"), else "en"."""
    if not lang:
        return "en"
    code = lang.strip().lower().replace("_", "-").split("-", 1)[0]
    # Bitrix24 uses "br" for Brazilian Portuguese and "la" for Latin-American Spanish.
    code = {"br": "pt", "la": "es"}.get(code, code)
    return code if code in SUPPORTED else "en"
