"""The OpenAPI 3.1 document, built from the registered routes so it cannot drift from them."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from backchannel import __version__
from backchannel.http.middleware import rate_limited
from backchannel.http.routing import RouteGroup, RouteSpec, json_response
from backchannel.server.keys import ROUTE_SPECS, RUNTIME

routes = RouteGroup(tag="operations")

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "enum": [
                        "invalid",
                        "unauthorized",
                        "token_expired",
                        "forbidden",
                        "not_found",
                        "conflict",
                        "payment_required",
                        "rate_limited",
                        "too_large",
                        "unavailable",
                        "internal",
                    ],
                },
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}
_PATH_PARAM = re.compile(r"\{([^}]+)\}")


def build_document(specs: list[RouteSpec], public_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document of `specs`.

    `servers` lists `/` first (the node that served the document: right for `/api/docs`
    wherever it is reached) and then `public_url` (BACKCHANNEL_PUBLIC_URL), for generated clients.
    """
    components: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        operation: dict[str, Any] = {
            "summary": spec.summary,
            "tags": [spec.tag],
            "operationId": f"{spec.method.lower()}_{spec.handler.__module__.rsplit('.', 1)[-1]}_"
            f"{spec.handler.__name__}",
            "responses": {},
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAM.findall(spec.path)
        ]
        parameters += _query_parameters(spec.query)
        if parameters:
            operation["parameters"] = parameters
        if spec.auth:
            operation["security"] = [{spec.auth: []}]
        if spec.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(spec.body, components)}},
            }
        success: dict[str, Any] = {"description": "success"}
        if isinstance(spec.response, tuple):
            schema = {"oneOf": [_ref(model, components) for model in spec.response]}
            success["content"] = {"application/json": {"schema": schema}}
        elif spec.response is not None:
            success["content"] = {"application/json": {"schema": _ref(spec.response, components)}}
        operation["responses"][str(spec.status)] = success
        limited = rate_limited(spec.method, spec.path)
        for status in sorted({*spec.errors, 500, *([429] if limited else [])}):
            operation["responses"][str(status)] = _error_response(status)
        paths.setdefault(spec.path, {})[spec.method.lower()] = operation
    servers = [{"url": "/", "description": "the server that served this document"}]
    if public_url and public_url.rstrip("/") != "":
        servers.append({"url": public_url.rstrip("/"), "description": "BACKCHANNEL_PUBLIC_URL"})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Backchannel", "version": __version__},
        "servers": servers,
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "http", "scheme": "bearer", "description": "server API key"},
            },
        },
    }


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status == 429:
        response["description"] = "rate limited (per client IP, per user, or by the operation)"
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


def _query_parameters(query: tuple[str, ...] | type[BaseModel]) -> list[dict[str, Any]]:
    """Query parameters, typed from the model that validates them (all optional).

    A query value is text, so `null` is not one: `anyOf [X, null]` becomes X. An empty value
    (`?limit=`) is accepted as absent (`backchannel.inputs.query_values`).
    """
    if isinstance(query, tuple):
        return [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in query
        ]
    parameters = []
    for name, schema in query.model_json_schema()["properties"].items():
        options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
        chosen = {k: v for k, v in options[0].items() if k != "title"} if options else {}
        if "default" in schema and schema["default"] is not None:
            chosen["default"] = schema["default"]
        parameters.append({"name": name, "in": "query", "required": False, "schema": chosen})
    return parameters


def _ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


@routes.route("GET", "/openapi.json", summary="This document", auth=None)
async def openapi(request: web.Request) -> web.Response:
    """Serve the document."""
    public_url = request.app[RUNTIME].settings.public_url
    return json_response(build_document(request.app[ROUTE_SPECS], public_url))
