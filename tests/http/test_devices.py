"""Devices: a user registers where pushes go; a token belongs to its newest user; 20 at most."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from backchannel.server.settings import Settings
from tests.chat_support import node
from tests.support import Api

DEVICES = "/api/v1/devices"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def subscription(endpoint: str = "https://push.example/send/abc") -> dict[str, Any]:
    """What a browser's `PushSubscription.toJSON()` gives, with a real P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {"endpoint": endpoint, "keys": {"p256dh": b64url(point), "auth": b64url(b"0" * 16)}}


async def test_a_fan_registers_lists_and_removes_devices(api: Api) -> None:
    fan = await api.register()
    status, web = await api.call(
        "POST",
        DEVICES,
        json={"platform": "webpush", "subscription": subscription(), "locale": "de-DE"},
        user=fan,
    )
    assert status == 201, web
    assert web["platform"] == "webpush" and web["created_at"]
    status, phone = await api.call(
        "POST",
        DEVICES,
        json={"platform": "apns", "token": "a" * 64, "time_zone": "Europe/Berlin"},
        user=fan,
    )
    assert status == 201, phone

    status, listed = await api.call("GET", DEVICES, user=fan)
    assert status == 200
    assert [d["id"] for d in listed["items"]] == [web["id"], phone["id"]]
    assert listed["items"][1]["time_zone"] == "Europe/Berlin"

    status, _ = await api.call("DELETE", f"{DEVICES}/{web['id']}", user=fan)
    assert status == 204
    status, listed = await api.call("GET", DEVICES, user=fan)
    assert [d["id"] for d in listed["items"]] == [phone["id"]]
    status, answer = await api.call("DELETE", f"{DEVICES}/{web['id']}", user=fan)
    assert status == 404 and answer["error"]["code"] == "not_found"


async def test_the_same_token_again_updates_it_and_moves_to_the_newest_user(api: Api) -> None:
    first, second = await api.register(), await api.register()
    body = {"platform": "fcm", "token": "fcm-token-1"}
    _, device = await api.call("POST", DEVICES, json=body, user=first)
    status, again = await api.call("POST", DEVICES, json=body | {"locale": "fr"}, user=second)
    assert status == 201 and again["id"] == device["id"]
    _, mine = await api.call("GET", DEVICES, user=first)
    _, theirs = await api.call("GET", DEVICES, user=second)
    assert mine["items"] == []
    assert [(d["id"], d["locale"]) for d in theirs["items"]] == [(device["id"], "fr")]
    # Someone else's device cannot be removed by id.
    status, _ = await api.call("DELETE", f"{DEVICES}/{device['id']}", user=first)
    assert status == 404


async def test_a_user_keeps_at_most_twenty_devices_the_oldest_goes(api: Api) -> None:
    fan = await api.register()
    ids = []
    for n in range(21):
        _, device = await api.call(
            "POST", DEVICES, json={"platform": "apns", "token": f"token-{n}"}, user=fan
        )
        ids.append(device["id"])
    _, listed = await api.call("GET", DEVICES, user=fan)
    assert [d["id"] for d in listed["items"]] == ids[1:]


async def test_bad_devices_are_refused_with_the_contract_error(api: Api) -> None:
    fan = await api.register()
    bad: list[dict[str, Any]] = [
        {"platform": "webpush", "token": "x"},
        {"platform": "apns"},
        {"platform": "fcm", "token": "t", "subscription": subscription()},
        {"platform": "sms", "token": "t"},
        {"platform": "apns", "token": "t", "time_zone": "Mars/Olympus"},
        {"platform": "webpush", "subscription": subscription("ftp://x/y/zzzzzz")},
        {"platform": "webpush", "subscription": {"endpoint": "https://p.example/1", "keys": {}}},
    ]
    for body in bad:
        status, answer = await api.call("POST", DEVICES, json=body, user=fan)
        assert status == 400, body
        assert answer["error"]["code"] == "invalid", answer
    status, _ = await api.call("POST", DEVICES, json={"platform": "apns", "token": "t"})
    assert status == 401
    status, answer = await api.call("DELETE", f"{DEVICES}/not-a-number", user=fan)
    assert status == 400


async def test_the_webpush_key_is_the_configured_vapid_public_key(
    api: Api, settings: Settings
) -> None:
    status, answer = await api.call("GET", "/api/v1/push/webpush-key")
    assert status == 200
    generated = (settings.data_dir / "vapid_private_key.pem").read_bytes()
    key = serialization.load_pem_private_key(generated, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert answer == {"public_key": b64url(point)} and len(point) == 65

    other = ec.generate_private_key(ec.SECP256R1())
    pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    async with node(settings, vapid_private_key=SecretStr(pem)) as configured:
        _, answer = await configured.api.call("GET", "/api/v1/push/webpush-key")
    point = other.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert answer == {"public_key": b64url(point)}


async def test_a_restricted_server_refuses_subscriptions_to_other_hosts(settings: Settings) -> None:
    hosts = ["push.example", ".push.services.mozilla.com"]
    async with node(settings, webpush_endpoint_hosts=hosts) as restricted:
        fan = await restricted.api.register()
        for endpoint, expected in [
            ("https://push.example/send/1", 201),
            ("https://updates.push.services.mozilla.com/wpush/v2/x", 201),
            ("http://push.example/send/2", 400),  # a restricted server wants https
            ("https://169.254.169.254/latest/meta-data", 400),
            ("https://push.example.attacker.test/send", 400),
        ]:
            status, answer = await restricted.api.call(
                "POST",
                DEVICES,
                json={"platform": "webpush", "subscription": subscription(endpoint)},
                user=fan,
            )
            assert status == expected, (endpoint, answer)
            if expected == 400:
                assert answer["error"]["code"] == "invalid"
                assert answer["error"]["details"][0]["field"] == "subscription.endpoint"


def test_production_admits_only_the_browsers_push_services(settings: Settings) -> None:
    production = settings.model_copy(update={"env": "production"})
    assert production.webpush_hosts is not None
    assert "fcm.googleapis.com" in production.webpush_hosts
    assert settings.webpush_hosts is None  # dev: any host, so local receivers work
