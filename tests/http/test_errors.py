"""Every HTTP failure answers in the contract's shape, with the right status."""

from __future__ import annotations

import io

import pytest
from aiohttp.test_utils import TestServer

from backchannel.server.keys import ROUTE_SPECS
from tests.support import Api


async def test_unknown_route_is_404_in_the_contract_shape(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/nothing-here")
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "no such route"}}


async def test_wrong_method_is_405_with_allow(api: Api) -> None:
    async with api.session.delete(f"{api.base_url}/api/v1/auth/login") as response:
        assert response.status == 405
        assert "POST" in response.headers["Allow"]
        assert (await response.json())["error"]["code"] == "invalid"


async def test_malformed_json_is_400(api: Api) -> None:
    status, body = await api.call("POST", "/api/v1/auth/login", data=b"{not json")
    assert status == 400
    assert body["error"]["code"] == "invalid"
    assert body["error"]["details"][0]["field"] == "(body)"


async def test_an_oversize_body_is_413(api: Api) -> None:
    status, body = await api.call("POST", "/api/v1/auth/login", data=io.BytesIO(b"x" * 2_000_000))
    assert status == 413
    assert body["error"]["code"] == "too_large"


async def test_request_ids_are_honoured_or_generated(api: Api) -> None:
    async with api.session.get(f"{api.base_url}/healthz", headers={"X-Request-ID": "abc-123"}) as r:
        assert r.headers["X-Request-ID"] == "abc-123"
    async with api.session.get(f"{api.base_url}/healthz", headers={"X-Request-ID": "bad id!"}) as r:
        assert r.headers["X-Request-ID"] != "bad id!" and len(r.headers["X-Request-ID"]) == 32


async def test_health_ready_and_metrics(api: Api) -> None:
    assert await api.call("GET", "/healthz") == (200, {"status": "ok"})
    status, body = await api.call("GET", "/readyz")
    assert status == 200
    assert body == {
        "status": "ok",
        "database": "ok",
        "redis": "not configured",
        "cluster": "not configured",
    }
    await api.call("GET", "/api/v1/nothing-here")
    async with api.session.get(f"{api.base_url}/metrics") as response:
        text = await response.text()
    assert "backchannel_http_requests_total" in text
    assert 'status="404"' in text
    assert "backchannel_socket_ack_seconds" in text


async def test_openapi_lists_exactly_the_registered_routes(api: Api, server: TestServer) -> None:
    status, document = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    registered = set()
    for route in server.app.router.routes():
        info = route.resource.canonical if route.resource else ""
        if info.startswith("/socket.io") or route.method in {"HEAD", "OPTIONS", "*"}:
            continue
        registered.add((route.method, info))
    assert documented == registered
    assert {(s.method, s.path) for s in server.app[ROUTE_SPECS]} == registered


@pytest.mark.parametrize("path", ["/api/v1/auth/me", "/api/v1/profiles/x"])
async def test_protected_routes_need_a_token(api: Api, path: str) -> None:
    status, body = await api.call("GET", path)
    assert status == 401 and body["error"]["code"] == "unauthorized"
