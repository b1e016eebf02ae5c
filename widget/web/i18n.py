"""Language of our pages: the CRM user's language (Kommo ``lang``, Bitrix24 ``LANG``); on a page opened
outside the CRM (the root page, an OAuth popup) the browser's; else English."""

from __future__ import annotations

from flask import request

from widget.domain.languages import SUPPORTED, normalise

__all__ = ["SUPPORTED", "normalise", "select_locale"]


def select_locale() -> str:
    from widget.web.identity import current_identity

    ident = current_identity()
    if ident is not None:
        return normalise(ident.lang)
    asked = request.args.get("lang") or request.args.get("LANG")
    if asked:
        return normalise(asked)
    return normalise(request.accept_languages.best_match(SUPPORTED))
