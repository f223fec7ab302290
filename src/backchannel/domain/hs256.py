"""A fast check of our own HS256 access tokens, for the connect path; PyJWT stays the judge.

Every socket connect verifies a token. PyJWT spends most of a verify on work that is the same
for every token we mint: it re-validates the base64url alphabet one character at a time in
Python, re-encodes each segment to compare, and re-checks on every call that the HMAC secret
is not a PEM, SSH or DER key (parsing it as DER, twice). That was ~35% of an authenticated
connect's CPU in the bench's profile.

`accept` only ever says yes or "ask PyJWT": it returns the claims of a token it has fully
verified — the one header our tokens carry, canonical base64url, a good HMAC-SHA256 signature
(constant-time comparison), a JSON object with `sub` a non-empty string, finite numeric `exp`
in the future and `iat` not in the future, no `nbf`, `aud` or non-string `jti` — and `None` for
anything else, which the caller then hands to PyJWT, whose verdict (and error message) stands.
So it can never accept a token PyJWT would refuse; `tests/domain/test_tokens.py` checks both
agree on valid, expired, future, tampered, re-encoded and oddly-shaped tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import time
from typing import Any, TypeGuard

# What `jwt.encode(..., algorithm="HS256")` writes, with and without the `typ` PyJWT adds.
_HEADERS = frozenset(
    {
        base64.urlsafe_b64encode(json.dumps(h, separators=(",", ":")).encode()).rstrip(b"=")
        for h in ({"alg": "HS256", "typ": "JWT"}, {"typ": "JWT", "alg": "HS256"}, {"alg": "HS256"})
    }
)


def _segment(data: bytes) -> bytes | None:
    """Decode a canonical unpadded base64url segment; None for anything else."""
    try:
        decoded = base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None
    # urlsafe_b64decode skips characters outside the alphabet: insist on the exact encoding.
    return decoded if base64.urlsafe_b64encode(decoded).rstrip(b"=") == data else None


def _number(value: Any) -> TypeGuard[int | float]:
    # json.loads reads Infinity and NaN; PyJWT refuses them (int() of either raises).
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class OwnTokenCheck:
    """Verifies tokens signed with one HS256 secret, for one (issuer-less, audience-less)
    configuration; `None` from `accept` means "not sure: ask PyJWT"."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def accept(self, token: str, *, require_type: bool) -> dict[str, Any] | None:
        """The claims of a token verified here, or None."""
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            return None
        parts = raw.split(b".")
        if len(parts) != 3 or parts[0] not in _HEADERS:
            return None
        payload_segment, signature = _segment(parts[1]), _segment(parts[2])
        if payload_segment is None or signature is None:
            return None
        expected = hmac.new(self._key, parts[0] + b"." + parts[1], hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            return None
        try:
            claims = json.loads(payload_segment)
        except ValueError:
            return None
        if not isinstance(claims, dict):
            return None
        sub, exp, iat = claims.get("sub"), claims.get("exp"), claims.get("iat")
        if not isinstance(sub, str) or not sub or not _number(exp) or not _number(iat):
            return None
        if "nbf" in claims or "aud" in claims:
            return None
        if "jti" in claims and not isinstance(claims["jti"], str):
            return None
        if require_type and claims.get("type") != "access":
            return None
        now = int(time.time())  # whole seconds, as PyJWT compares
        if exp <= now or iat > now:
            return None
        return claims
