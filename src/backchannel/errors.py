"""The closed catalogue of error codes and the domain exceptions that carry them.

Both transports turn a `BackchannelError` into the contract's error object; HTTP also
maps its code to a status with `HTTP_STATUS`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every error code a client can receive (PROTOCOL.md, Conventions)."""

    INVALID = "invalid"
    UNAUTHORIZED = "unauthorized"
    TOKEN_EXPIRED = "token_expired"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    PAYMENT_REQUIRED = "payment_required"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYMENT_REQUIRED: 402,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


class BackchannelError(Exception):
    """A failure the client is told about, with a code from the catalogue."""

    code: ErrorCode = ErrorCode.INTERNAL
    default_message = "internal error"

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The contract's error object."""
        error: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return error

    @property
    def http_status(self) -> int:
        """The HTTP status this error is answered with."""
        return HTTP_STATUS[self.code]


class Invalid(BackchannelError):
    """The input failed validation; `details` lists `{field, message}`."""

    code = ErrorCode.INVALID
    default_message = "invalid input"


class Unauthorized(BackchannelError):
    """No identity, or one that cannot be trusted."""

    code = ErrorCode.UNAUTHORIZED
    default_message = "authentication required"


class TokenExpired(BackchannelError):
    """The access token was valid but has expired."""

    code = ErrorCode.TOKEN_EXPIRED
    default_message = "access token expired"


class Forbidden(BackchannelError):
    """The caller is known but may not do this."""

    code = ErrorCode.FORBIDDEN
    default_message = "not allowed"


class NotFound(BackchannelError):
    """No such thing."""

    code = ErrorCode.NOT_FOUND
    default_message = "not found"


class Conflict(BackchannelError):
    """The request clashes with the current state."""

    code = ErrorCode.CONFLICT
    default_message = "conflict"


class PaymentRequired(BackchannelError):
    """Payment is needed first; `details` says price, currency and how to pay."""

    code = ErrorCode.PAYMENT_REQUIRED
    default_message = "payment required"


class RateLimited(BackchannelError):
    """Too many requests; `details.retry_after_ms` says when to try again."""

    code = ErrorCode.RATE_LIMITED
    default_message = "too many requests"

    def __init__(self, retry_after_ms: int, message: str | None = None) -> None:
        super().__init__(message, {"retry_after_ms": max(int(retry_after_ms), 1)})
        self.retry_after_ms = max(int(retry_after_ms), 1)


class TooLarge(BackchannelError):
    """The payload exceeds a size limit."""

    code = ErrorCode.TOO_LARGE
    default_message = "payload too large"


class Unavailable(BackchannelError):
    """A dependency is down; nothing was stored."""

    code = ErrorCode.UNAVAILABLE
    default_message = "service temporarily unavailable; nothing was stored, try again"


class Internal(BackchannelError):
    """An unexpected failure; the message carries a correlation id, never internals."""

    code = ErrorCode.INTERNAL
    default_message = "internal error"


def validation_details(errors: list[Any]) -> list[dict[str, str]]:
    """Turn pydantic's error list into the contract's `[{field, message}]`."""
    details = []
    for err in errors:
        field = ".".join(str(part) for part in err.get("loc", ())) or "(body)"
        details.append({"field": field, "message": str(err.get("msg", "invalid"))})
    return details
