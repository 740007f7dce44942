"""Toloka's error body and the statuses the local server answers with.

Toloka answers every failure with ``{"request_id", "code", "message", "payload"}``; toloka-kit
maps ``code`` to its exception classes, so matching the codes exactly is what makes the
client's own error handling (and ours on top of it) run unchanged.
"""

from __future__ import annotations

import uuid
from typing import Any


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, payload: Any = None, headers: dict[str, str] | None = None
    ):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.payload = status, code, message, payload
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"request_id": str(uuid.uuid4()), "code": self.code, "message": self.message}
        if self.payload is not None:
            out["payload"] = self.payload
        return out


def field_error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def validation(errors: dict[str, dict[str, str]]) -> ApiError:
    """400 with one entry per invalid field path, e.g. ``{"input_values.text": {...}}``."""
    return ApiError(400, "VALIDATION_ERROR", "Validation failed", errors)


def not_found(kind: str, obj_id: str) -> ApiError:
    return ApiError(404, "DOES_NOT_EXIST", f"{kind} {obj_id} does not exist")


def bad_status(message: str) -> ApiError:
    return ApiError(409, "INAPPROPRIATE_STATUS", message)


def throttled(retry_after_s: int = 1) -> ApiError:
    return ApiError(
        429,
        "TOO_MANY_REQUESTS",
        "Too many requests",
        {"interval": "MIN"},
        headers={"Retry-After": str(retry_after_s)},
    )


def internal() -> ApiError:
    return ApiError(500, "INTERNAL_ERROR", "Internal server error (injected fault)")
