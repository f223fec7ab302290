"""Sockets connect only with a valid token, on our five namespaces, and learn why when refused."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.support import Api, Sockets

NAMESPACES = ["/chat", "/typing", "/presence", "/ppv", "/notifications"]


def _token(sub: str, *, ttl: int = 60, secret: str = TEST_JWT_SECRET, **extra: object) -> str:
    now = int(time.time())
    claims = {"sub": sub, "type": "access", "iat": now, "exp": now + ttl, **extra}
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.parametrize("namespace", NAMESPACES)
async def test_a_user_with_a_token_connects_to_every_namespace(
    api: Api, sockets: Sockets, namespace: str
) -> None:
    fan = await api.register()
    socket = await sockets.connect(namespace, fan)
    assert socket.client.connected


async def test_the_token_may_come_in_an_authorization_header(api: Api, sockets: Sockets) -> None:
    fan = await api.register()
    socket = await sockets.connect("/chat", auth=None, headers=fan.auth_headers)
    assert socket.client.connected


@pytest.mark.parametrize("namespace", NAMESPACES)
async def test_a_socket_without_a_token_is_refused_with_the_contract_error(
    sockets: Sockets, namespace: str
) -> None:
    error = await sockets.refused(namespace)
    assert error["message"] == "an access token is required"
    assert error["data"]["code"] == "unauthorized"


async def test_forged_expired_and_deleted_users_are_refused(
    api: Api, sockets: Sockets, server: TestServer
) -> None:
    fan = await api.register()
    forged = _token(fan.id, secret="wrong-secret-" + "z" * 40)
    assert (await sockets.refused("/chat", token=forged))["data"]["code"] == "unauthorized"
    expired = _token(fan.id, ttl=-10)
    assert (await sockets.refused("/chat", token=expired))["data"]["code"] == "token_expired"
    unsigned = jwt.encode(
        {"sub": fan.id, "type": "access", "iat": 1, "exp": int(time.time()) + 60}, None, "none"
    )
    assert (await sockets.refused("/chat", token=unsigned))["data"]["code"] == "unauthorized"
    assert (await sockets.refused("/chat", auth={"token": 42}))["data"]["code"] == "unauthorized"

    from backchannel.persistence import users
    from backchannel.server.keys import RUNTIME

    async with server.app[RUNTIME].db.transaction() as conn:
        await users.soft_delete_user(conn, fan.id)
    error = await sockets.refused("/chat", token=fan.access_token)
    assert error["data"]["code"] == "unauthorized"


async def test_the_default_and_unknown_namespaces_are_refused(api: Api, sockets: Sockets) -> None:
    fan = await api.register()
    for namespace in ["/", "/admin"]:
        error = await sockets.refused(namespace, token=fan.access_token)
        # The contract's error object, as for a refused token (not a bare string).
        assert error == {
            "message": f"no namespace {namespace}",
            "data": {"code": "not_found", "message": f"no namespace {namespace}"},
        }


async def test_an_unknown_event_is_acked_with_invalid(api: Api, sockets: Sockets) -> None:
    fan = await api.register()
    socket = await sockets.connect("/chat", fan)
    ack = await socket.call("no:such:event", {})
    assert ack == {
        "ok": False,
        "error": {"code": "invalid", "message": "unknown event 'no:such:event' on /chat"},
    }


async def test_when_the_token_expires_the_socket_is_told_and_disconnected(
    api: Api, sockets: Sockets
) -> None:
    fan = await api.register()
    socket = await sockets.connect("/chat", token=_token(fan.id, ttl=2))
    [notice] = await socket.wait_for("session:expired", timeout=6)
    assert notice["code"] == "token_expired"
    for _ in range(50):
        if not socket.client.connected:
            break
        await asyncio.sleep(0.1)
    assert not socket.client.connected


async def test_each_socket_expires_with_its_own_token_not_with_anothers(
    api: Api, sockets: Sockets
) -> None:
    fan = await api.register()
    # Lifetimes of a few seconds: a 1 s token can expire before a loaded machine connects it.
    later = await sockets.connect("/chat", token=_token(fan.id, ttl=60))
    gone = await sockets.connect("/chat", token=_token(fan.id, ttl=3))
    soon = await sockets.connect("/chat", token=_token(fan.id, ttl=4))
    left = await sockets.connect("/chat", token=_token(fan.id, ttl=3))
    await left.disconnect()  # its deadline passes with nobody there to tell
    await gone.wait_for("session:expired", timeout=10)
    await soon.wait_for("session:expired", timeout=10)
    for _ in range(50):
        if not gone.client.connected and not soon.client.connected:
            break
        await asyncio.sleep(0.1)
    assert not gone.client.connected and not soon.client.connected
    assert later.client.connected
    await later.assert_nothing("session:expired", within=0.5)
    ack = await later.call("no:such:event", {})
    assert ack["error"]["code"] == "invalid"


async def test_an_external_rs256_token_from_a_jwks_provisions_the_user(
    settings: Settings, services: object
) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    provider = web.Application()
    provider.router.add_get("/.well-known/jwks.json", jwks)
    idp = TestServer(provider, host="127.0.0.1")
    await idp.start_server()
    configured = settings.model_copy(
        update={
            "jwt_jwks_url": str(idp.make_url("/.well-known/jwks.json")),
            "jwt_issuer": "https://idp.example",
            "jwt_audience": "backchannel",
        }
    )
    server = TestServer(create_app(configured), host="127.0.0.1")
    await server.start_server()
    opened = Sockets(str(server.make_url("")).rstrip("/"))
    try:
        now = int(time.time())
        claims = {
            "sub": "idp|creator-7",
            "iat": now,
            "exp": now + 60,
            "name": "Seven",
            "role": "creator",
            "iss": "https://idp.example",
            "aud": "backchannel",
        }
        token = jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": "k1"})
        socket = await opened.connect("/chat", token=token)
        assert socket.client.connected

        import aiohttp

        async with aiohttp.ClientSession() as session:
            api = Api(str(server.make_url("")), session)
            status, me = await api.call(
                "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert status == 200
            assert me["user"]["id"] == "idp|creator-7"
            assert me["profile"] == {
                "user_id": "idp|creator-7",
                "display_name": "Seven",
                "bio": "",
                "avatar_url": None,
                "role": "creator",
                "subscription_price_cents": 0,
                "dm_policy": "everyone",  # the test settings' default for creators
                "dm_price_cents": None,
            }
            wrong_audience = jwt.encode(
                {**claims, "aud": "someone-else"}, private_key, "RS256", headers={"kid": "k1"}
            )
            status, body = await api.call(
                "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {wrong_audience}"}
            )
            assert status == 401 and body["error"]["code"] == "unauthorized"
            other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            impostor = jwt.encode(claims, other_key, "RS256", headers={"kid": "k1"})
            status, body = await api.call(
                "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {impostor}"}
            )
            assert status == 401
    finally:
        await opened.close_all()
        await server.close()
        await idp.close()
