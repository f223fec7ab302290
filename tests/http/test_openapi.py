"""The OpenAPI document: valid, typed as the server parses, true about limits and answers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp.test_utils import TestServer
from openapi_spec_validator import validate

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.stripe_support import FakeStripe, fake_stripe, with_stripe
from tests.support import Api

__all__ = ["fake_stripe"]


async def _document(api: Api) -> dict[str, Any]:
    status, document = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    return dict(document)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


async def test_the_document_is_valid_openapi_3_1(api: Api) -> None:
    document = await _document(api)
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_paging_parameters_are_integers_and_the_server_parses_them_so(api: Api) -> None:
    document = await _document(api)
    paged = []
    for method, path, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and parameter["name"] in {"limit", "before_seq"}:
                assert parameter["schema"]["type"] == "integer", (method, path, parameter)
                assert parameter["schema"]["minimum"] >= 1, (method, path, parameter)
                paged.append((method, path, parameter["name"]))
    names = {(path, name) for _, path, name in paged}
    assert ("/api/v1/conversations/{conversation_id}/messages", "before_seq") in names
    assert ("/api/v1/creator/earnings/entries", "limit") in names
    assert ("/api/v1/admin/audit", "limit") in names

    creator = await api.register(role="creator")
    for value in ("ten", "0", "1.5"):
        status, body = await api.call(
            "GET", f"/api/v1/creator/earnings/entries?limit={value}", user=creator
        )
        assert status == 400 and body["error"]["code"] == "invalid", (value, body)
    status, _ = await api.call("GET", "/api/v1/creator/earnings/entries?limit=3", user=creator)
    assert status == 200


async def test_servers_name_the_serving_node_then_the_public_url(api: Api) -> None:
    document = await _document(api)
    assert [server["url"] for server in document["servers"]] == ["/", "http://localhost:8080"]


@pytest.fixture
async def strict_api(settings: Settings) -> AsyncIterator[Api]:
    """A node whose per-IP HTTP budget is one request a minute."""
    strict = settings.model_copy(update={"http_ip_rate_limit": "1/60s"})
    server = TestServer(create_app(strict), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(str(server.make_url("")), session)
    finally:
        await server.close()


async def test_429_is_documented_exactly_where_the_limiter_answers_it(strict_api: Api) -> None:
    api = strict_api
    async with api.session.get(f"{api.base_url}/api/v1/openapi.json") as response:
        document = await response.json()  # this spends the one request of the minute
    assert response.status == 200
    limited = unlimited = 0
    for method, path, operation in _operations(document):
        url = api.base_url + re.sub(r"\{[^}]+\}", "x", path)
        async with api.session.request(method, url, json={}) as response:
            await response.read()
        if "429" in operation["responses"]:
            limited += 1
            assert response.status == 429, (method, path, response.status)
            assert int(response.headers["Retry-After"]) >= 1
            assert "Retry-After" in operation["responses"]["429"]["headers"]
        else:
            unlimited += 1
            assert response.status != 429, (method, path)
    assert limited > 50 and unlimited >= 5, (limited, unlimited)


async def test_both_answers_of_post_purchases_are_in_the_document(
    settings: Settings, fake_stripe: FakeStripe
) -> None:
    server = TestServer(create_app(with_stripe(settings, fake_stripe)), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(str(server.make_url("")), session)
            document = await _document(api)
            answer = document["paths"]["/api/v1/purchases"]["post"]["responses"]["201"]
            schema = {
                **answer["content"]["application/json"]["schema"],
                "components": document["components"],
            }
            creator, fan = await api.register(role="creator"), await api.register()
            await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 500}, user=fan)
            tip = {"kind": "tip", "target_id": creator.id, "amount_cents": 300}
            status, by_wallet = await api.call(
                "POST", "/api/v1/purchases", json={**tip, "pay_with": "wallet"}, user=fan
            )
            assert status == 201 and by_wallet["status"] == "completed"
            status, by_card = await api.call(
                "POST", "/api/v1/purchases", json={**tip, "pay_with": "card"}, user=fan
            )
            assert status == 201 and by_card["checkout_url"].startswith("https://")
    finally:
        await server.close()
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(by_wallet)
    validator.validate(by_card)
    # Each answer is one of the two shapes, not both: a client can tell them apart.
    for answer_body in (by_wallet, by_card):
        matches = [
            option
            for option in schema["oneOf"]
            if jsonschema.Draft202012Validator(
                {**option, "components": document["components"]}
            ).is_valid(answer_body)
        ]
        assert len(matches) == 1, (answer_body, matches)
