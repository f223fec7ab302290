"""The AsyncAPI 3.0 document of the Socket.IO side, built from the namespaces themselves.

Every client event comes from a namespace's `@event` registrations (the model its payload is
validated with, and its ack's model), every server event from the namespace's
`server_events` and `COMMON_SERVER_EVENTS`; schemas are the pydantic models' own JSON
schemas. The document describes the server: client events are operations it `receive`s
(with the ack as the reply), server events operations it `send`s. `clients/js` generates its
types from this document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from backchannel import __version__
from backchannel.domain.event_models import ErrorObject
from backchannel.handlers.base import AuthenticatedNamespace
from backchannel.handlers.session_events import COMMON_SERVER_EVENTS

REF = "#/components/schemas/{model}"
_KEY = re.compile(r"[^\w.\-]")

DESCRIPTION = """Backchannel's realtime API: Socket.IO 4 (Engine.IO 4) at `/socket.io/`, \
one connection carrying five namespaces. Connect each namespace with \
`auth: {token: "<access JWT>"}` (`/chat` also takes `last_seq: {conversation_id: seq}` for \
a replay on connect). Every client event takes an ack callback; the ack is \
`{ok: true, data}` or `{ok: false, error}`. See docs/protocol.md for the rules \
(ordering by `seq`, retries with the same `client_id`, resync)."""


def key(name: str) -> str:
    """An AsyncAPI component key for an event or schema name (`message:new` → `message_new`).

    pydantic qualifies clashing model names with their module
    (`backchannel__domain__chat_views__SyncPage`); those become `ChatViewsSyncPage`.
    """
    if "__" in name:
        *modules, cls = name.split("__")
        name = "".join(part.title() for part in modules[-1].split("_")) + cls
    return _KEY.sub("_", name)


def build_asyncapi(namespaces: Iterable[type[AuthenticatedNamespace]]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of `namespaces`."""
    entries: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorObject, "serialization")]
    plan: list[tuple[type[AuthenticatedNamespace], list[tuple[str, Any, Any]], dict[str, Any]]] = []
    for cls in namespaces:
        specs = sorted(cls.event_specs().items())
        client = [(name, spec.model, spec.ack) for name, spec in specs]
        server = {**COMMON_SERVER_EVENTS, **cls.server_events}
        for _, model, ack in client:
            if model is not None:
                entries.append((model, "validation"))
            if ack is not None:
                entries.append((ack, "serialization"))
        entries.extend((model, "serialization") for model in server.values())
        plan.append((cls, client, server))
    refs, top = models_json_schema(list(dict.fromkeys(entries)), ref_template=REF)
    schemas = {key(name): _rekey(schema) for name, schema in top.get("$defs", {}).items()}

    def ref(model: type[BaseModel] | None, mode: JsonSchemaMode) -> dict[str, Any]:
        if model is None:
            return {"type": "object"}
        reference: dict[str, Any] = _rekey(refs[(model, mode)])
        return reference

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    error = ref(ErrorObject, "serialization")
    for cls, client, server in plan:
        channel = cls.path.value.strip("/")
        channel_messages: dict[str, Any] = {}
        for name, model, ack in client:
            request_key, ack_key = f"{channel}.{key(name)}", f"{channel}.{key(name)}.ack"
            messages[request_key] = {
                "name": name,
                "title": name,
                "summary": _summary(cls, name),
                "payload": ref(model, "validation"),
            }
            messages[ack_key] = {
                "name": f"{name} (ack)",
                "title": f"{name} ack",
                "payload": _envelope(ref(ack, "serialization"), error),
            }
            channel_messages[key(name)] = {"$ref": f"#/components/messages/{request_key}"}
            channel_messages[f"{key(name)}.ack"] = {"$ref": f"#/components/messages/{ack_key}"}
            operations[f"{channel}.{key(name)}"] = _operation(
                "receive", channel, key(name), name, reply=f"{key(name)}.ack"
            )
        for name, model in sorted(server.items()):
            # `.event`: a name can be both (`message:read` is a request and a receipt).
            event_key = f"{channel}.{key(name)}.event"
            messages[event_key] = {
                "name": name,
                "title": name,
                "summary": (model.__doc__ or name).strip().splitlines()[0],
                "payload": ref(model, "serialization"),
            }
            channel_messages[f"{key(name)}.event"] = {"$ref": f"#/components/messages/{event_key}"}
            operations[f"{channel}.{key(name)}.event"] = _operation(
                "send", channel, f"{key(name)}.event", name
            )
        channels[channel] = {
            "address": cls.path.value,
            "title": cls.path.value,
            "description": (cls.__doc__ or "").strip(),
            "messages": channel_messages,
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Backchannel realtime API",
            "version": __version__,
            "description": DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def with_server(document: dict[str, Any], host: str, *, secure: bool) -> dict[str, Any]:
    """The document with the server it was fetched from as its one `servers` entry."""
    server = {
        "host": host,
        "protocol": "wss" if secure else "ws",
        "pathname": "/socket.io/",
        "description": "Socket.IO 4; long-polling over http(s) works too",
    }
    return {**document, "servers": {"backchannel": server}}


def _operation(
    action: Literal["send", "receive"], channel: str, message: str, name: str, reply: str = ""
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "title": name,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
    }
    if reply:
        operation["reply"] = {
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{reply}"}],
        }
    return operation


def _envelope(data: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    """The contract's ack: `{ok: true, data}` or `{ok: false, error}`."""
    return {
        "oneOf": [
            {
                "type": "object",
                "required": ["ok", "data"],
                "properties": {"ok": {"const": True}, "data": data},
            },
            {
                "type": "object",
                "required": ["ok", "error"],
                "properties": {"ok": {"const": False}, "error": error},
            },
        ]
    }


def _summary(cls: type[AuthenticatedNamespace], name: str) -> str:
    handler = cls.event_specs()[name].handler
    return (handler.__doc__ or name).strip().splitlines()[0]


def _rekey(schema: Any) -> Any:
    """Component references with keys AsyncAPI accepts."""
    if isinstance(schema, dict):
        return {
            k: (
                "#/components/schemas/" + key(v.removeprefix("#/components/schemas/"))
                if k == "$ref" and isinstance(v, str)
                else _rekey(v)
            )
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rekey(item) for item in schema]
    return schema
