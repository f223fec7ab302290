"""Reading a request: its JSON body as a model, its query, and its caller's identity."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from backchannel.domain.auth import Identity, authenticate
from backchannel.errors import Invalid, TooLarge, Unauthorized, validation_details
from backchannel.server.keys import RUNTIME
from backchannel.server.proxies import client_address
from backchannel.server.runtime import Runtime

M = TypeVar("M", bound=BaseModel)


def runtime(request: web.Request) -> Runtime:
    """The app's runtime."""
    return request.app[RUNTIME]


async def read_body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated as `model`; `invalid` or `too_large` otherwise."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise TooLarge(
            f"request body exceeds {request.app[RUNTIME].settings.max_http_body_bytes} bytes"
        ) from exc
    if not raw:
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Invalid(
                "request body is not valid JSON", [{"field": "(body)", "message": str(exc)}]
            ) from None
    return validate(model, data)


def validate(model: type[M], data: Any) -> M:
    """`data` as `model`, or `invalid` with field details."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid("invalid request", validation_details(exc.errors())) from None


def query(request: web.Request, model: type[M]) -> M:
    """The query string validated as `model`."""
    return validate(model, dict(request.query))


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer` header."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def client_ip(request: web.Request) -> str:
    """The client's IP, through X-Forwarded-For when the peer is a trusted proxy."""
    return client_address(
        request.remote,
        request.headers.get("X-Forwarded-For"),
        request.app[RUNTIME].trusted_proxies,
    )


async def caller(request: web.Request) -> Identity:
    """The authenticated user making this request."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("an access token is required (Authorization: Bearer)")
    return await authenticate(runtime(request), token)
