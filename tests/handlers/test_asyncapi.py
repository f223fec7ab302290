"""`/api/v1/asyncapi.json` describes every namespace, client event, ack and server event."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest

from backchannel.handlers.asyncapi import key
from backchannel.handlers.registry import NAMESPACE_CLASSES
from backchannel.handlers.session_events import COMMON_SERVER_EVENTS
from tests.support import Api

ROOT = Path(__file__).resolve().parents[2]
# The official schema, from the npm package `@asyncapi/specs` (a dev dependency of clients/js).
SCHEMA = ROOT / "clients/js/node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json"


@pytest.fixture
def asyncapi_schema() -> dict[str, object]:
    """The AsyncAPI 3.0.0 JSON schema (installed by `make test`: npm ci in clients/js)."""
    if not SCHEMA.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SCHEMA} is missing: run `make clients/js/node_modules/.installed`")
        pytest.skip("clients/js/node_modules is needed for the AsyncAPI schema (make test)")
    loaded: dict[str, object] = json.loads(SCHEMA.read_text())
    return loaded


async def test_the_asyncapi_document_validates_against_the_official_schema(
    api: Api, asyncapi_schema: dict[str, object]
) -> None:
    status, document = await api.call("GET", "/api/v1/asyncapi.json")
    assert status == 200
    assert document["asyncapi"] == "3.0.0"
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft7Validator(asyncapi_schema).iter_errors(document)
    ]
    assert errors == []
    server = document["servers"]["backchannel"]
    assert server["protocol"] == "ws" and server["pathname"] == "/socket.io/"
    assert server["host"] == api.base_url.split("//", 1)[1]


async def test_the_official_schema_refuses_a_broken_document(
    api: Api, asyncapi_schema: dict[str, object]
) -> None:
    _, document = await api.call("GET", "/api/v1/asyncapi.json")
    document["operations"]["chat.message_send"]["action"] = "shout"
    assert list(jsonschema.Draft7Validator(asyncapi_schema).iter_errors(document))


async def test_every_registered_event_appears_with_its_payload_ack_and_server_events(
    api: Api,
) -> None:
    _, document = await api.call("GET", "/api/v1/asyncapi.json")
    messages, schemas = document["components"]["messages"], document["components"]["schemas"]
    assert {c["address"] for c in document["channels"].values()} == {
        cls.path.value for cls in NAMESPACE_CLASSES
    }
    for cls in NAMESPACE_CLASSES:
        channel = cls.path.value.strip("/")
        for name, spec in cls.event_specs().items():
            operation = document["operations"][f"{channel}.{key(name)}"]
            assert operation["action"] == "receive"
            request = messages[f"{channel}.{key(name)}"]
            assert request["name"] == name
            assert spec.model is not None and spec.ack is not None, name
            assert request["payload"] == {
                "$ref": f"#/components/schemas/{key(spec.model.__name__)}"
            }
            ack = messages[f"{channel}.{key(name)}.ack"]["payload"]["oneOf"]
            assert ack[0]["properties"]["ok"] == {"const": True}
            assert ack[0]["properties"]["data"]["$ref"].endswith(key(spec.ack.__name__))
            assert ack[1]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorObject"}
            assert operation["reply"]["messages"] == [
                {"$ref": f"#/channels/{channel}/messages/{key(name)}.ack"}
            ]
        for name in {**COMMON_SERVER_EVENTS, **cls.server_events}:
            assert document["operations"][f"{channel}.{key(name)}.event"]["action"] == "send"
            assert messages[f"{channel}.{key(name)}.event"]["name"] == name
    # Every reference resolves.
    for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)):
        assert ref in schemas, ref
    message = schemas["Message"]
    assert {"id", "conversation_id", "seq", "client_id", "locked"} <= set(message["required"])


def test_every_event_the_server_emits_is_in_a_namespace_catalogue() -> None:
    """An emit of an event no namespace declares would be missing from the document (and from
    the JS client's types): every event name the source emits must be declared."""
    declared = set(COMMON_SERVER_EVENTS)
    for cls in NAMESPACE_CLASSES:
        declared |= set(cls.server_events)
    emit = re.compile(
        r"(?:to_user|to_users|to_room|to_socket|to_local_sockets|end_local_room|self\.emit)\("
        r"[^()]*?\"([a-z_]+(?::[a-z_]+)?)\"",
        re.S,
    )
    emitted = set()
    for path in (ROOT / "src/backchannel").rglob("*.py"):
        emitted |= set(emit.findall(path.read_text()))
    assert emitted, "the pattern found no emit at all"
    assert emitted - declared == set()
