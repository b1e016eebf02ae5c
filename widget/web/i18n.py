"""Language of our pages: the CRM user's language (Kommo ``lang``, Bitrix24 ``LANG``); on a page opened
outside the CRM (the root page, an OAuth popup) the browser's; else English."""

from __future__ import annotations

from flask import request

SUPPORTED = ("en", "es", "pt", "ru")


def normalise(lang: str | None) -> str:
    if not lang:
        return "en"
    code = lang.strip().lower().replace("_", "-").split("-", 1)[0]
    # Bitrix24 uses "br" for Brazilian Portuguese and "la" for Latin-American Spanish.
    code = {"br": "pt", "la": "es"}.get(code, code)
    return code if code in SUPPORTED else "en"


def select_locale() -> str:
    from widget.web.identity import current_identity

    ident = current_identity()
    if ident is not None:
        return normalise(ident.lang)
    asked = request.args.get("lang") or request.args.get("LANG")
    if asked:
        return normalise(asked)
    return normalise(request.accept_languages.best_match(SUPPORTED))
