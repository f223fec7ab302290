"""Tokens shaped as Supabase, Clerk and Auth0 issue them (RS256, no `type`, the role and email
in claims of their own) work over HTTP and sockets, with the role applied on every connect."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from backchannel.domain.tokens import ClaimMapping, TokenService
from backchannel.errors import Unauthorized
from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.support import Api, Sockets

PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = (
    PRIVATE_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def supabase_token(sub: str, role: str, email: str, ttl: int = 60) -> str:
    """What Supabase issues: no `type`, `role: authenticated`, the app's role in app_metadata."""
    now = int(time.time())
    claims = {
        "sub": sub,
        "iat": now,
        "exp": now + ttl,
        "aud": "authenticated",
        "role": "authenticated",
        "email": email,
        "app_metadata": {"role": role},
    }
    return jwt.encode(claims, PRIVATE_KEY, algorithm="RS256")


@pytest.fixture
async def idp_server(settings: Settings) -> AsyncIterator[tuple[Api, Sockets]]:
    """Backchannel trusting the IdP's public key, with Supabase's claim layout configured."""
    configured = settings.model_copy(
        update={
            "jwt_public_key": PUBLIC_PEM,
            "jwt_audience": "authenticated",
            "jwt_role_claim": "app_metadata.role",
        }
    )
    server = TestServer(create_app(configured), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    opened = Sockets(url)
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(url, session), opened
    finally:
        await opened.close_all()
        await server.close()


async def test_a_supabase_shaped_token_works_over_http_and_sockets_with_its_role_and_email(
    idp_server: tuple[Api, Sockets],
) -> None:
    api, sockets = idp_server
    token = supabase_token("7b1c-uuid", "creator", "Ada@Example.com")
    socket = await sockets.connect("/chat", token=token)
    assert socket.client.connected
    status, me = await api.call("GET", "/api/v1/auth/me", headers=_bearer(token))
    assert status == 200
    assert me["user"] == {**me["user"], "id": "7b1c-uuid", "email": "ada@example.com"}
    assert me["user"]["role"] == "creator"

    # The provider demotes the user: the next connect (and request) applies it.
    demoted = supabase_token("7b1c-uuid", "fan", "ada@example.com")
    socket = await sockets.connect("/ppv", token=demoted)
    assert socket.client.connected
    status, me = await api.call("GET", "/api/v1/auth/me", headers=_bearer(demoted))
    assert me["user"]["role"] == "fan"


async def test_our_own_tokens_still_need_their_type_and_a_refresh_token_is_refused(
    idp_server: tuple[Api, Sockets], settings: Settings
) -> None:
    api, _ = idp_server
    fan = await api.register()
    assert (await api.call("GET", "/api/v1/auth/me", user=fan))[0] == 200
    now = int(time.time())
    untyped = jwt.encode(
        {"sub": fan.id, "iat": now, "exp": now + 60},
        settings.jwt_secret_value(),
        algorithm="HS256",
    )
    status, body = await api.call("GET", "/api/v1/auth/me", headers=_bearer(untyped))
    assert status == 401 and body["error"]["code"] == "unauthorized"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_requiring_the_type_refuses_untyped_external_tokens(tmp_path: Path) -> None:
    tokens = TokenService(
        Settings(
            data_dir=tmp_path,
            jwt_secret=SecretStr("k" * 40),
            jwt_public_key=PUBLIC_PEM,
            jwt_audience="authenticated",
            jwt_require_type=True,
        )
    )
    with pytest.raises(Unauthorized):
        await tokens.verify(supabase_token("u", "fan", "u@example.com"))


@pytest.mark.parametrize(
    ("role_claim", "email_claim", "claims", "role", "email"),
    [
        # Clerk: public metadata in a custom session claim.
        (
            "public_metadata.role",
            "email",
            {"public_metadata": {"role": "moderator"}, "email": "c@x.io"},
            "moderator",
            "c@x.io",
        ),
        # Auth0: namespaced claims (dots in the name) and a list of roles.
        (
            "https://bc.example/roles",
            "https://bc.example/email",
            {"https://bc.example/roles": ["staff", "admin"], "https://bc.example/email": "a@x.io"},
            "admin",
            "a@x.io",
        ),
        # Nothing configured: a plain `role` claim; an unknown role maps to nothing.
        (None, "email", {"role": "authenticated", "email": "not-an-email"}, None, None),
    ],
)
def test_claims_are_found_by_name_or_by_path(
    role_claim: str | None,
    email_claim: str,
    claims: dict[str, Any],
    role: str | None,
    email: str | None,
) -> None:
    mapping = ClaimMapping(role_claim, email_claim, None)
    assert mapping.role(claims) == role
    assert mapping.email(claims) == email
