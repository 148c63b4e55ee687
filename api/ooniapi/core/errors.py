"""The API's error hierarchy. Routes raise these; ``app.register_error_handlers``
maps every one to a JSON answer (api.md §1.3) in one place."""
from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 500

    def __init__(self, message: str, status: int | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    """A write lost a race with another write of the same row (409)."""
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class RateLimited(ApiError):
    status = 429


class StorageUnavailable(ApiError):
    """The measurement could not be stored durably: the probe must keep it."""
    status = 503


class DatabaseTimeout(ApiError):
    status = 504


class OoniError(BadRequest):
    """Errors with a stable machine code (``err_str``), api.md §1.3."""

    def __init__(self, err_str: str, message: str, status: int = 400,
                 err_args: dict | None = None):
        extra: dict[str, Any] = {"err_str": err_str}
        if err_args is not None:
            extra["err_args"] = err_args
        super().__init__(message, status, **extra)
