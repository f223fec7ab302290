"""A newcomer registers, logs in, refreshes and logs out over HTTP — and every wrong turn."""

from __future__ import annotations

import time

import jwt

from tests.conftest import TEST_JWT_SECRET
from tests.support import Api


async def test_a_fan_registers_and_sees_themselves(api: Api) -> None:
    status, body = await api.call(
        "POST",
        "/api/v1/auth/register",
        json={"email": "  Fan@Example.COM ", "password": "hunter2hunter2", "display_name": "Fan"},
    )
    assert status == 201
    assert body["user"]["email"] == "fan@example.com"
    assert body["user"]["role"] == "fan"
    assert body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == body["user"]["id"] and claims["type"] == "access"

    status, me = await api.call(
        "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert status == 200
    assert me["user"]["id"] == body["user"]["id"]
    assert me["profile"]["display_name"] == "Fan"


async def test_registering_an_email_twice_is_a_conflict(api: Api) -> None:
    await api.register(email="dup@example.com")
    status, body = await api.call(
        "POST",
        "/api/v1/auth/register",
        json={"email": "DUP@example.com", "password": "longenough", "display_name": "Again"},
    )
    assert status == 409 and body["error"]["code"] == "conflict"


async def test_registration_rejects_bad_email_short_password_and_unknown_role(api: Api) -> None:
    status, body = await api.call(
        "POST",
        "/api/v1/auth/register",
        json={"email": "not-an-email", "password": "short", "display_name": "", "role": "admin"},
    )
    assert status == 400
    assert body["error"]["code"] == "invalid"
    fields = {d["field"] for d in body["error"]["details"]}
    assert {"email", "password", "display_name", "role"} <= fields


async def test_login_with_the_right_password_and_not_the_wrong_one(api: Api) -> None:
    user = await api.register()
    status, body = await api.call(
        "POST", "/api/v1/auth/login", json={"email": user.email.upper(), "password": user.password}
    )
    assert status == 200 and body["user"]["id"] == user.id
    status, body = await api.call(
        "POST", "/api/v1/auth/login", json={"email": user.email, "password": "wrong-password"}
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await api.call(
        "POST", "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever1"}
    )
    assert status == 401 and body["error"]["message"] == "wrong email or password"


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(api: Api) -> None:
    user = await api.register()
    status, first = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert status == 200 and first["refresh_token"] != user.refresh_token

    # The old token is presented again: someone copied it. The whole session ends.
    status, body = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert status == 401 and "revoked" in body["error"]["message"]
    status, body = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert status == 401


async def test_logout_ends_the_session(api: Api) -> None:
    user = await api.register()
    status, _ = await api.call(
        "POST", "/api/v1/auth/logout", json={"refresh_token": user.refresh_token}
    )
    assert status == 204
    status, body = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def test_me_refuses_missing_forged_expired_and_unsigned_tokens(api: Api) -> None:
    user = await api.register()
    status, body = await api.call("GET", "/api/v1/auth/me")
    assert status == 401 and body["error"]["code"] == "unauthorized"

    forged = jwt.encode(
        {"sub": user.id, "type": "access", "iat": int(time.time()), "exp": int(time.time()) + 60},
        "another-secret-" + "y" * 40,
        algorithm="HS256",
    )
    expired = jwt.encode(
        {
            "sub": user.id,
            "type": "access",
            "iat": int(time.time()) - 120,
            "exp": int(time.time()) - 60,
        },
        TEST_JWT_SECRET,
        algorithm="HS256",
    )
    unsigned = jwt.encode(
        {"sub": user.id, "type": "access", "iat": int(time.time()), "exp": int(time.time()) + 60},
        None,
        algorithm="none",
    )
    no_expiry = jwt.encode(
        {"sub": user.id, "type": "access", "iat": int(time.time())}, TEST_JWT_SECRET
    )
    for token, code in [
        (forged, "unauthorized"),
        (expired, "token_expired"),
        (unsigned, "unauthorized"),
        (no_expiry, "unauthorized"),
        ("garbage", "unauthorized"),
    ]:
        status, body = await api.call(
            "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 401, token
        assert body["error"]["code"] == code, (token, body)


async def test_a_creator_edits_their_profile_and_a_fan_reads_it(api: Api) -> None:
    creator = await api.register(role="creator")
    fan = await api.register()
    status, profile = await api.call(
        "PATCH",
        "/api/v1/profiles/me",
        user=creator,
        json={
            "bio": "I paint",
            "subscription_price_cents": 499,
            "avatar_url": "https://a.example/p.png",
        },
    )
    assert status == 200, profile
    assert profile["subscription_price_cents"] == 499
    status, seen = await api.call("GET", f"/api/v1/profiles/{creator.id}", user=fan)
    assert status == 200 and seen == profile

    status, body = await api.call(
        "PATCH", "/api/v1/profiles/me", user=fan, json={"subscription_price_cents": 100}
    )
    assert status == 403 and body["error"]["code"] == "forbidden"  # a matter of role
    status, body = await api.call("GET", "/api/v1/profiles/no-such-user", user=fan)
    assert status == 404 and body["error"]["code"] == "not_found"
