"""No input reaches a 5xx: each finding of the hostile-input review (issue 20), answered 400/401.

Deep JSON, NUL characters, integers past 64 bits, `%00` in path ids, loose amount types,
`javascript:` media, tokens Postgres or PyJWT would choke on, and absurd Stripe events.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from backchannel.server.settings import Settings
from tests.chat_support import node, open_dm
from tests.conftest import TEST_JWT_SECRET
from tests.stripe_support import FakeStripe, Webhooks, event, fake_stripe, sign, with_stripe
from tests.support import Api, Sockets

__all__ = ["fake_stripe"]


@pytest.fixture
def stripe_settings(settings: Settings, fake_stripe: FakeStripe) -> Settings:
    """Stripe pointed at the fake; dev top-ups on."""
    return with_stripe(settings, fake_stripe)


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _error(status: int, body: Any, expected_status: int, code: str) -> dict[str, Any]:
    assert status == expected_status, (status, body)
    assert body["error"]["code"] == code, body
    return dict(body["error"])


@pytest.mark.parametrize("depth", [40, 5_000])
@pytest.mark.parametrize(
    "path", ["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh"]
)
async def test_deeply_nested_json_is_invalid_even_unauthenticated(
    api: Api, path: str, depth: int
) -> None:
    status, body = await api.call(
        "POST", path, data=_deep(depth), headers={"Content-Type": "application/json"}
    )
    _error(status, body, 400, "invalid")


async def test_nul_characters_never_reach_postgres(api: Api) -> None:
    status, body = await api.call(
        "POST", "/api/v1/auth/login", json={"email": "a\u0000@example.com", "password": "x" * 12}
    )
    assert _error(status, body, 400, "invalid")["details"][0]["field"] == "email"
    status, body = await api.call(
        "POST",
        "/api/v1/auth/register",
        json={
            "email": "nul@example.com",
            "password": "correct horse battery",
            "display_name": "Nul\u0000",
            "role": "fan",
        },
    )
    assert _error(status, body, 400, "invalid")["details"][0]["field"] == "display_name"
    user = await api.register()
    status, body = await api.call("PATCH", "/api/v1/profiles/me", json={"bio": "\u0000"}, user=user)
    assert _error(status, body, 400, "invalid")["details"][0]["field"] == "bio"
    status, body = await api.call("PATCH", "/api/v1/profiles/me", json={"bio": "\ud800"}, user=user)
    _error(status, body, 400, "invalid")


async def test_content_titles_and_media_urls_are_checked(api: Api) -> None:
    creator = await api.register("creator")
    for bad in (
        {"title": "t\u0000", "visibility": "public"},
        {"media": [{"url": "javascript:alert(1)", "type": "image"}], "visibility": "public"},
        {"media": [{"url": "data:text/html,<b>x</b>", "type": "image"}], "visibility": "public"},
    ):
        status, body = await api.call("POST", "/api/v1/content", json=bad, user=creator)
        _error(status, body, 400, "invalid")
    ok = {"media": [{"url": "https://cdn.example.com/a.jpg", "type": "image"}]}
    status, body = await api.call(
        "POST", "/api/v1/content", json={**ok, "visibility": "public"}, user=creator
    )
    assert status == 201, body


async def test_media_urls_must_be_https_outside_dev(settings: Settings) -> None:
    async with node(settings, env="production", creator_signup="open") as prod:
        creator = await prod.api.register("creator")
        item = {"media": [{"url": "http://cdn.example.com/a.jpg", "type": "image"}]}
        status, body = await prod.api.call(
            "POST", "/api/v1/content", json={**item, "visibility": "public"}, user=creator
        )
        assert _error(status, body, 400, "invalid")["details"][0]["field"] == "media.0.url"
        status, body = await prod.api.call(
            "PATCH",
            "/api/v1/profiles/me",
            json={"avatar_url": "http://cdn.example.com/me.jpg"},
            user=creator,
        )
        assert _error(status, body, 400, "invalid")["details"][0]["field"] == "avatar_url"


@pytest.mark.parametrize(
    "query",
    ["before_seq=9223372036854775808", "before_seq=-1", "limit=99999999999999999999999"],
)
async def test_integers_past_64_bits_in_a_query_are_invalid(api: Api, query: str) -> None:
    user = await api.register()
    status, body = await api.call("GET", f"/api/v1/conversations/1/messages?{query}", user=user)
    _error(status, body, 400, "invalid")


async def test_an_empty_query_value_means_the_default(api: Api) -> None:
    user = await api.register()
    status, body = await api.call("GET", "/api/v1/conversations?limit=", user=user)
    assert status == 200, body
    status, body = await api.call("GET", "/api/v1/notifications?limit=&cursor=", user=user)
    assert status == 200, body


@pytest.mark.parametrize(
    "path", ["/api/v1/profiles/%00", "/api/v1/content/%00", "/api/v1/creators/%00/content"]
)
async def test_nul_in_a_path_id_is_invalid(api: Api, path: str) -> None:
    user = await api.register()
    status, body = await api.call("GET", path, user=user)
    _error(status, body, 400, "invalid")


async def test_an_empty_profile_patch_changes_nothing(api: Api) -> None:
    user = await api.register()
    status, body = await api.call("PATCH", "/api/v1/profiles/me", json={}, user=user)
    assert status == 200, body
    assert body["user_id"] == user.id


@pytest.mark.parametrize("amount", [True, "100", 1.5, 10**30, None])
async def test_http_amounts_are_integers_as_on_sockets(
    stripe_settings: Settings, amount: Any
) -> None:
    async with node(stripe_settings) as n:
        fan = await n.api.register()
        creator = await n.api.register("creator")
        status, body = await n.api.call(
            "POST", "/api/v1/dev/wallet/topup", json={"amount_cents": amount}, user=fan
        )
        _error(status, body, 400, "invalid")
        status, body = await n.api.call(
            "POST",
            "/api/v1/purchases",
            json={
                "kind": "tip",
                "target_id": creator.id,
                "amount_cents": amount,
                "pay_with": "wallet",
            },
            user=fan,
        )
        _error(status, body, 400, "invalid")
        status, body = await n.api.call("GET", "/api/v1/wallet", user=fan)
        assert status == 200 and body["balance_cents"] == 0, body


# -- tokens -------------------------------------------------------------------------------


def _rsa_public_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _es256_token(sub: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 60}, key, algorithm="ES256")


async def test_an_es256_token_against_an_rsa_key_is_unauthorized(settings: Settings) -> None:
    async with node(settings, jwt_public_key=_rsa_public_pem()) as n:
        token = _es256_token("someone")
        status, body = await n.api.call(
            "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
        )
        _error(status, body, 401, "unauthorized")
        refusal = await n.sockets.refused("/chat", token=token)
        assert refusal["data"]["code"] == "unauthorized", refusal


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_a_signed_token_with_a_non_numeric_time_claim_is_unauthorized(
    api: Api, sockets: Sockets, claim: str
) -> None:
    user = await api.register()
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user.id, "type": "access", "iat": now, "exp": now + 60}
    claims[claim] = str(claims.get(claim, now))
    token = jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")
    status, body = await api.call(
        "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
    )
    _error(status, body, 401, "unauthorized")
    refusal = await sockets.refused("/chat", token=token)
    assert refusal["data"]["code"] == "unauthorized", refusal
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sockets.connect("/chat", token=token)


# -- Stripe -------------------------------------------------------------------------------


@pytest.mark.parametrize("created", [10**20, -(10**18), 1e20])
async def test_a_stripe_event_with_an_absurd_created_is_a_400(
    stripe_settings: Settings, created: Any
) -> None:
    async with node(stripe_settings) as n:
        evt = event("payment_intent.created", {"id": "pi_x", "object": "payment_intent"})
        evt["created"] = created
        body = json.dumps(evt).encode()
        status, answer = await Webhooks(n.api).post_raw(body, sign(body))
        _error(status, answer, 400, "invalid")


async def test_a_stripe_event_nested_20000_deep_is_a_400(stripe_settings: Settings) -> None:
    async with node(stripe_settings) as n:
        body = _deep(20_000).encode()
        status, answer = await Webhooks(n.api).post_raw(body, sign(body))
        _error(status, answer, 400, "invalid")


async def test_chat_media_must_be_https_outside_dev_too(settings: Settings) -> None:
    async with node(settings, env="production", creator_signup="open") as prod:
        creator, fan = await prod.api.register("creator"), await prod.api.register()
        conversation_id = await open_dm(prod.sockets, creator, fan)
        socket = await prod.sockets.connect("/chat", creator)
        media = [{"url": "http://cdn.example.com/a.jpg", "type": "image"}]
        ack = await socket.call(
            "message:send",
            {"conversation_id": conversation_id, "client_id": "m1", "media": media},
        )
        assert ack["ok"] is False and ack["error"]["code"] == "invalid", ack
        assert ack["error"]["details"][0]["field"] == "media.0.url"
