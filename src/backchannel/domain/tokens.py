"""Access tokens: minting our own HS256 JWTs and verifying those and externally minted ones."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from backchannel.domain.hs256 import OwnTokenCheck
from backchannel.errors import TokenExpired, Unauthorized, Unavailable
from backchannel.server.settings import Settings

OWN_ALGORITHM = "HS256"
EXTERNAL_ALGORITHMS = ["RS256", "ES256"]
_JWKS_TTL_SECONDS = 600.0
_JWKS_MIN_REFRESH_SECONDS = 30.0
_TIME_CLAIMS = ("exp", "iat", "nbf")


@dataclass(frozen=True)
class TokenClaims:
    """What a verified access token says about its bearer."""

    user_id: str
    expires_at: float
    external: bool
    name: str | None = None
    email: str | None = None
    role: str | None = None
    session_id: str | None = None


class JwksCache:
    """A JWKS from a URL or a file, cached, refetched when a key id is unknown."""

    def __init__(self, source: str, http: aiohttp.ClientSession | None) -> None:
        self._source = source
        self._http = http
        self._keys: jwt.PyJWKSet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> Any:
        """The public key for `kid` (or the only key when the token names none)."""
        keys = await self._load(force=False)
        key = _find_key(keys, kid)
        if key is None and time.monotonic() - self._fetched_at > _JWKS_MIN_REFRESH_SECONDS:
            keys = await self._load(force=True)
            key = _find_key(keys, kid)
        if key is None:
            raise Unauthorized("token signed by an unknown key")
        return key

    async def _load(self, *, force: bool) -> jwt.PyJWKSet:
        async with self._lock:
            fresh = time.monotonic() - self._fetched_at < _JWKS_TTL_SECONDS
            if self._keys is not None and fresh and not force:
                return self._keys
            try:
                data = await self._fetch()
                self._keys = jwt.PyJWKSet.from_dict(data)
                self._fetched_at = time.monotonic()
            except (OSError, aiohttp.ClientError, ValueError, jwt.PyJWKSetError) as exc:
                if self._keys is None:
                    raise Unavailable("the identity provider's keys cannot be loaded") from exc
            return self._keys

    async def _fetch(self) -> dict[str, Any]:
        if self._source.startswith(("http://", "https://")):
            if self._http is None:
                raise ValueError("no HTTP client for JWKS")
            timeout = aiohttp.ClientTimeout(total=5)
            async with self._http.get(self._source, timeout=timeout) as response:
                response.raise_for_status()
                data: dict[str, Any] = await response.json(content_type=None)
                return data
        text = await asyncio.to_thread(Path(self._source.removeprefix("file://")).read_text)
        loaded: dict[str, Any] = json.loads(text)
        return loaded


def _find_key(keys: jwt.PyJWKSet, kid: str | None) -> Any:
    for key in keys.keys:
        if kid is None or key.key_id == kid:
            return key.key
    return None


# Verified tokens remembered per node (about 0.5 kB each).
_VERIFIED_MAX = 20_000
_HEADERS_MAX = 32


class TokenService:
    """Mints and verifies access tokens."""

    def __init__(self, settings: Settings, http: aiohttp.ClientSession | None = None) -> None:
        self._secret = settings.jwt_secret_value()
        self._ttl = settings.access_token_ttl_seconds
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._public_key = _load_pem(settings.jwt_public_key) if settings.jwt_public_key else None
        self._jwks = JwksCache(settings.jwt_jwks_url, http) if settings.jwt_jwks_url else None
        self._claims = ClaimMapping.of(settings)
        self._verified: dict[str, TokenClaims] = {}
        self._headers: dict[str, dict[str, Any]] = {}
        # Only for the plain configuration: an issuer or audience check is PyJWT's alone.
        self._own_check = (
            OwnTokenCheck(self._secret) if not self._issuer and not self._audience else None
        )

    @property
    def access_ttl_seconds(self) -> int:
        """How long a minted access token lives."""
        return self._ttl

    def mint_access(
        self, user_id: str, session_id: str | None = None, account_id: str | None = None
    ) -> str:
        """A signed HS256 access token for profile `user_id` of account `account_id` (`acc`),
        in login session `session_id` (`sid`)."""
        now = int(time.time())
        claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + self._ttl}
        claims["type"] = "access"
        if session_id is not None:
            claims["sid"] = session_id
        if account_id is not None:
            claims["acc"] = account_id
        if self._issuer:
            claims["iss"] = self._issuer
        if self._audience:
            claims["aud"] = self._audience
        return jwt.encode(claims, self._secret, algorithm=OWN_ALGORITHM)

    async def verify(self, token: str) -> TokenClaims:
        """The claims of a valid token; `Unauthorized` or `TokenExpired` otherwise.

        A token verified once is remembered until it expires: a client opens several
        namespaces with one token, and after a node dies every client reconnects with the
        token it holds. The whole token (its signature included) is the key, so only the exact
        bytes that passed verification hit; revocation is checked by the caller every time.
        """
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at > time.time():
                return known
            del self._verified[token]
        claims = await self._verify(token)
        if len(self._verified) >= _VERIFIED_MAX:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = claims
        return claims

    def _header(self, token: str) -> dict[str, Any]:
        """The token's unverified header, parsed once per distinct header segment.

        Every token one issuer signs with one key carries the same header bytes; parsing it is
        a third of PyJWT's work per token. Only well-formed headers naming an accepted
        algorithm are kept, and only a few, so a client cannot grow the table.
        """
        segment = token.split(".", 1)[0]
        known = self._headers.get(segment)
        if known is not None:
            return known
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthorized("malformed token") from exc
        accepted = header.get("alg") == OWN_ALGORITHM or header.get("alg") in EXTERNAL_ALGORITHMS
        if accepted and len(self._headers) < _HEADERS_MAX:
            self._headers[segment] = header
        return header

    async def _verify(self, token: str) -> TokenClaims:
        if self._own_check is not None:
            fast = self._own_check.accept(
                token, require_type=self._claims.require_type(external=False)
            )
            if fast is not None:
                return TokenClaims(
                    user_id=fast["sub"],
                    expires_at=fast["exp"],
                    external=False,
                    session_id=_str_claim(fast, "sid"),
                )
        header = self._header(token)
        algorithm = header.get("alg")
        if algorithm == OWN_ALGORITHM:
            claims = self._decode(token, self._secret, [OWN_ALGORITHM])
            if self._claims.require_type(external=False) and claims.get("type") != "access":
                raise Unauthorized("not an access token")
            return TokenClaims(
                user_id=claims["sub"],
                expires_at=claims["exp"],
                external=False,
                session_id=_str_claim(claims, "sid"),
            )
        if algorithm in EXTERNAL_ALGORITHMS:
            key = await self._external_key(header.get("kid"))
            claims = self._decode(token, key, EXTERNAL_ALGORITHMS)
            if self._claims.require_type(external=True) and claims.get("type") != "access":
                raise Unauthorized("not an access token")
            return TokenClaims(
                user_id=claims["sub"],
                expires_at=claims["exp"],
                external=True,
                name=_str_claim(claims, "name"),
                email=self._claims.email(claims),
                role=self._claims.role(claims),
            )
        raise Unauthorized(f"token algorithm {algorithm!r} is not accepted")

    async def _external_key(self, kid: str | None) -> Any:
        if self._jwks is not None:
            return await self._jwks.key_for(kid)
        if self._public_key is not None:
            return self._public_key
        raise Unauthorized("externally signed tokens are not configured")

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> dict[str, Any]:
        options: dict[str, Any] = {"require": ["exp", "sub", "iat"]}
        if not self._audience:
            options["verify_aud"] = False
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired() from exc
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
            # Not only InvalidTokenError: a key that does not fit the token's algorithm (an
            # ES256 token against an RSA key) raises InvalidKeyError, and a malformed key or
            # signature can surface as ValueError from the crypto backend.
            raise Unauthorized(f"invalid token: {exc}") from exc
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized("invalid token: sub must be a non-empty string")
        for name in _TIME_CLAIMS:
            # PyJWT accepts "123" for a time claim; everything downstream does arithmetic.
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise Unauthorized(f"invalid token: {name} must be a number")
        return claims


ROLES = ("fan", "creator", "moderator", "admin")


@dataclass(frozen=True)
class ClaimMapping:
    """Where an identity provider puts the email and the role, and whether `type` is checked.

    A claim name is looked up whole first (Auth0 namespaces claims as URLs, dots included),
    then as a dotted path (`app_metadata.role` for Supabase, `public_metadata.role` for Clerk).
    A role claim may hold a list (Auth0 `roles`): the first value that is a role here wins.
    """

    role_claim: str | None
    email_claim: str
    require_type_setting: bool | None

    @classmethod
    def of(cls, settings: Settings) -> ClaimMapping:
        """The mapping the settings describe."""
        return cls(settings.jwt_role_claim, settings.jwt_email_claim, settings.jwt_require_type)

    def require_type(self, *, external: bool) -> bool:
        """Whether `type: "access"` is required: by default for our own tokens only."""
        if self.require_type_setting is None:
            return not external
        return self.require_type_setting

    def email(self, claims: dict[str, Any]) -> str | None:
        """The email claim, when it is a string holding an `@`."""
        value = _lookup(claims, self.email_claim)
        return value.strip().lower() if isinstance(value, str) and "@" in value else None

    def role(self, claims: dict[str, Any]) -> str | None:
        """The configured role claim mapped to a role; without one, a legacy `role` claim."""
        value = _lookup(claims, self.role_claim or "role")
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str) and item.lower() in ROLES:
                return item.lower()
        return None


def _lookup(claims: dict[str, Any], name: str) -> Any:
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _str_claim(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def _load_pem(value: str) -> str:
    if "-----BEGIN" in value:
        return value
    return Path(value).read_text()
