"""`/webhook-endpoints`: a platform backend manages its endpoints with its server API key."""

from __future__ import annotations

from aiohttp.test_utils import TestServer

from backchannel.domain import api_keys
from backchannel.server.keys import RUNTIME
from tests.support import Api
from tests.webhooks.conftest import ENDPOINTS, bearer


async def test_an_endpoint_is_created_listed_changed_and_deleted_by_its_key(
    api: Api, key: str
) -> None:
    status, created = await api.call(
        "POST",
        ENDPOINTS,
        json={
            "url": "https://platform.example/hooks",
            "events": ["purchase.completed", "user.offline", "purchase.completed"],
            "description": "billing",
        },
        headers=bearer(key),
    )
    assert status == 201, created
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["purchase.completed", "user.offline"]
    assert created["url"] == "https://platform.example/hooks"
    assert created["enabled"] and not created["include_bodies"]
    endpoint_id = created["id"]

    status, listed = await api.call("GET", ENDPOINTS, headers=bearer(key))
    assert status == 200
    [item] = listed["items"]
    assert "secret" not in item, "the secret is shown once"
    assert item == {k: v for k, v in created.items() if k != "secret"}

    status, changed = await api.call(
        "PATCH",
        f"{ENDPOINTS}/{endpoint_id}",
        json={"events": ["*"], "include_bodies": True, "description": None},
        headers=bearer(key),
    )
    assert status == 200, changed
    assert changed["events"] == ["*"] and changed["include_bodies"]
    assert changed["description"] is None and changed["url"] == created["url"]
    status, got = await api.call("GET", f"{ENDPOINTS}/{endpoint_id}", headers=bearer(key))
    assert status == 200 and got == changed

    status, _ = await api.call("DELETE", f"{ENDPOINTS}/{endpoint_id}", headers=bearer(key))
    assert status == 204
    status, body = await api.call("GET", f"{ENDPOINTS}/{endpoint_id}", headers=bearer(key))
    assert status == 404 and body["error"]["code"] == "not_found"
    status, _ = await api.call("DELETE", f"{ENDPOINTS}/{endpoint_id}", headers=bearer(key))
    assert status == 404


async def test_another_key_neither_sees_nor_changes_an_endpoint(
    api: Api, server: TestServer, key: str
) -> None:
    _, other = await api_keys.create_key(server.app[RUNTIME].db, "other-platform")
    status, created = await api.call(
        "POST",
        ENDPOINTS,
        json={"url": "https://platform.example/hooks", "events": ["*"]},
        headers=bearer(key),
    )
    assert status == 201
    path = f"{ENDPOINTS}/{created['id']}"
    status, listed = await api.call("GET", ENDPOINTS, headers=bearer(other))
    assert status == 200 and listed["items"] == []
    for method, json in (("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)):
        status, body = await api.call(method, path, json=json, headers=bearer(other))
        assert status == 404, (method, body)
    status, body = await api.call("GET", f"{path}/deliveries", headers=bearer(other))
    assert status == 404


async def test_bad_input_gets_the_contracts_error_shape(api: Api, key: str) -> None:
    good = {"url": "https://platform.example/hooks", "events": ["message.created"]}
    cases = [
        ({**good, "events": ["message.sent"]}, "events"),
        ({**good, "events": []}, "events"),
        ({**good, "events": ["*", "message.created"]}, "events"),
        ({**good, "url": "ftp://platform.example/hooks"}, "url"),
        ({**good, "url": "not a url"}, "url"),
        ({**good, "secret": "mine"}, "secret"),
        ({**good, "include_bodies": "yes please"}, "include_bodies"),
    ]
    for payload, field in cases:
        status, body = await api.call("POST", ENDPOINTS, json=payload, headers=bearer(key))
        assert status == 400, (payload, body)
        assert body["error"]["code"] == "invalid"
        assert any(d["field"].startswith(field) for d in body["error"]["details"]), body

    status, body = await api.call("POST", ENDPOINTS, json=good)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await api.call("POST", ENDPOINTS, json=good, headers=bearer("bck_nope"))
    assert status == 401
    status, body = await api.call("GET", f"{ENDPOINTS}/abc", headers=bearer(key))
    assert status == 404

    status, created = await api.call("POST", ENDPOINTS, json=good, headers=bearer(key))
    assert status == 201
    for patch in ({"url": None}, {"events": ["nope"]}, {"enabled": "maybe"}, {"x": 1}):
        status, body = await api.call(
            "PATCH", f"{ENDPOINTS}/{created['id']}", json=patch, headers=bearer(key)
        )
        assert status == 400 and body["error"]["code"] == "invalid", (patch, body)


async def test_outside_dev_mode_an_endpoint_must_be_https(
    api: Api, server: TestServer, key: str
) -> None:
    rt = server.app[RUNTIME]
    status, _ = await api.call(
        "POST",
        ENDPOINTS,
        json={"url": "http://platform.example/hooks", "events": ["*"]},
        headers=bearer(key),
    )
    assert status == 201, "http: is fine in dev mode"
    rt.settings = rt.settings.model_copy(update={"env": "production"})
    status, body = await api.call(
        "POST",
        ENDPOINTS,
        json={"url": "http://platform.example/hooks", "events": ["*"]},
        headers=bearer(key),
    )
    assert status == 400 and body["error"]["details"][0]["field"] == "url"
