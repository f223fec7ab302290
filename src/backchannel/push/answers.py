"""Turning a provider's HTTP answer into an `Outcome` (the rules every provider shares)."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import time
from collections.abc import Mapping

from backchannel.push.messages import Outcome, PushResult

# A provider asking for more than a day is treated as asking for a day.
MAX_RETRY_AFTER = 86_400.0


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP-date), None if absent/bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def answer(
    status: int, headers: Mapping[str, str], detail: str, *, gone: bool = False
) -> PushResult:
    """The outcome of an HTTP answer: 2xx delivered, `gone`, 429/5xx retry, else failed.

    `gone` is the provider-specific verdict (Web Push 404/410, FCM UNREGISTERED, APNs 410 ...).
    """
    detail = detail.strip()[:200] or str(status)
    if 200 <= status < 300:
        return PushResult(Outcome.DELIVERED, status, None, detail)
    if gone:
        return PushResult(Outcome.GONE, status, None, detail)
    if status == 429 or status >= 500:
        return PushResult(Outcome.RETRY, status, retry_after(headers.get("Retry-After")), detail)
    return PushResult(Outcome.FAILED, status, None, detail)


def no_answer(exc: BaseException) -> PushResult:
    """A connection error or timeout: try again later."""
    text = str(exc).strip()
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return PushResult(Outcome.RETRY, None, None, detail[:200])


def topic(collapse_key: str, limit: int = 32) -> str:
    """A collapse key as <= `limit` base64url characters (Web Push `Topic`, RFC 8030 5.4)."""
    digest = hashlib.sha256(collapse_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()[:limit]
