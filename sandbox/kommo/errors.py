"""Failures the sandbox answers with, in Kommo's two error dialects (reference §1.4 and §5.8)."""

from __future__ import annotations

from typing import Any

# The token endpoint's problem type; the API uses https://httpstatus.es/{status} instead.
OAUTH_PROBLEM_TYPE = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class OAuthError(Exception):
    """A token-endpoint refusal. Kommo's body carries a human ``hint``; there is no ``error`` field."""

    def __init__(self, status: int, hint: str) -> None:
        super().__init__(hint)
        self.status = status
        self.hint = hint

    def body(self) -> dict[str, Any]:
        # The observed body (reference §1.4) keeps amoCRM's Russian title/detail even on English accounts.
        return {
            "hint": self.hint,
            "title": "Некорректный запрос" if self.status == 400 else TITLES.get(self.status, "Error"),
            "type": OAUTH_PROBLEM_TYPE,
            "status": self.status,
            "detail": "В запросе отсутствует ряд параметров или параметры невалидны"  # noqa: RUF001
            if self.status == 400
            else self.hint,
        }


class ApiError(Exception):
    """An API v4 refusal, rendered as ``application/problem+json``."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        validation: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.validation = validation
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.validation is not None:
            body["validation-errors"] = self.validation
        body.update(
            {
                "title": TITLES.get(self.status, "Error"),
                "type": f"https://httpstatus.es/{self.status}",
                "status": self.status,
                "detail": self.detail,
            }
        )
        body.update(self.extra)
        return body


class Invalid:
    """Collects per-item validation errors the way Kommo groups them: by ``request_id``."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, request_id: str, code: str, path: str, detail: str) -> None:
        for item in self.items:
            if item["request_id"] == request_id:
                item["errors"].append({"code": code, "path": path, "detail": detail})
                return
        self.items.append({"request_id": request_id, "errors": [{"code": code, "path": path, "detail": detail}]})

    def raise_if_any(self) -> None:
        if self.items:
            raise ApiError(400, "Request validation failed", validation=self.items)


def not_supported(invalid: Invalid, request_id: str, path: str) -> None:
    invalid.add(request_id, "NotSupportedChoice", path, "The value you selected is not a valid choice.")


def wrong_type(invalid: Invalid, request_id: str, path: str) -> None:
    invalid.add(request_id, "InvalidType", path, "This value should be of type int.")
