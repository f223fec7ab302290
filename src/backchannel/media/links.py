"""Per-viewer, expiring signed links to stored media (and to local upload targets).

A link names one media id, one variant, one viewer and an expiry, HMAC-signed with a key
derived from the server's secret: changing any of them, or using it after `exp`, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

Variant = str  # full | thumbnail | preview | poster | upload
VARIANTS = frozenset({"full", "thumbnail", "preview", "poster"})


@dataclass(frozen=True)
class SignedLink:
    """A signed URL and when it stops working."""

    url: str
    expires_at: datetime


@dataclass(frozen=True)
class MediaLinks:
    """Signs and checks links; built once by the app factory from the settings."""

    secret: bytes
    ttl_seconds: int
    base_url: str = ""
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def from_secret(cls, server_secret: str, ttl_seconds: int, base_url: str = "") -> MediaLinks:
        """Links keyed by a value derived from (never equal to) the server's secret."""
        key = hmac.new(server_secret.encode(), b"backchannel media links v1", "sha256").digest()
        return cls(secret=key, ttl_seconds=ttl_seconds, base_url=base_url.rstrip("/"))

    def signature(self, media_id: str, variant: Variant, viewer: str, exp: int) -> str:
        """The HMAC over id, variant, viewer and expiry."""
        message = f"{media_id}\n{variant}\n{viewer}\n{exp}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:43]

    def link(
        self, media_id: str, variant: Variant, viewer: str, ttl_seconds: int | None = None
    ) -> SignedLink:
        """`GET /media/{id}/{variant}?exp=&v=&sig=` for `viewer`, valid for the TTL."""
        exp = int(self.clock()) + (ttl_seconds if ttl_seconds is not None else self.ttl_seconds)
        query = urlencode(
            {"exp": exp, "v": viewer, "sig": self.signature(media_id, variant, viewer, exp)}
        )
        suffix = "upload" if variant == "upload" else variant
        return SignedLink(
            url=f"{self.base_url}/media/{media_id}/{suffix}?{query}",
            expires_at=datetime.fromtimestamp(exp, UTC),
        )

    def check(self, media_id: str, variant: Variant, viewer: str, exp: str, sig: str) -> int:
        """Seconds the link has left; 0 when it is expired, tampered or malformed."""
        # compare_digest refuses non-ASCII text with a TypeError: a hostile query is just wrong.
        if not exp.isdigit() or len(exp) > 12 or not sig.isascii():
            return 0
        expected = self.signature(media_id, variant, viewer, int(exp))
        if not hmac.compare_digest(expected, sig):
            return 0
        return max(0, int(exp) - int(self.clock()))
