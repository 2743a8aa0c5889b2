"""Typed errors of the HTTP boundary and the one place they become status codes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bento.schemas import CROSS_FIELD_ERROR

HTTP_STATUS_CODES = {
    "malformed_json": 400,
    "too_deeply_nested": 400,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "batch_too_large": 413,
    "unsupported_media_type": 415,
    "validation_error": 422,
    "overloaded": 503,
    "not_ready": 503,
    "internal_error": 500,
}


class ApiError(Exception):
    """An error a client can act on; never carries exception text from inside."""

    def __init__(self, error: str, message: str, detail: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.detail = list(detail)

    @property
    def status(self) -> int:
        """The HTTP status code of this error."""
        return HTTP_STATUS_CODES[self.error]

    def body(self) -> bytes:
        """The JSON body sent to the client."""
        return json.dumps(
            {
                "error": self.error,
                "message": self.message,
                "detail": [{"field": f, "reason": r} for f, r in self.detail],
            }
        ).encode()


def _location(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Turn pydantic's error list into (field path, reason) pairs without echoing input."""
    pairs: list[tuple[str, str]] = []
    for err in errors:
        loc = list(err.get("loc", ()))
        kind = err.get("type")
        reason = str(err.get("msg", "invalid value"))
        if kind == CROSS_FIELD_ERROR:
            ctx = err.get("ctx") or {}
            loc.append(ctx.get("field", ""))
            reason = str(ctx.get("reason", reason))
        elif kind == "extra_forbidden":
            reason = "unknown field (check the spelling against the API schema)"
        elif kind == "missing":
            reason = "required field is missing"
        pairs.append((_location(loc), reason))
    return pairs
