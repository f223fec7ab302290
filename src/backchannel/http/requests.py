"""Reading a request: its JSON body as a model, its query, and its caller's identity."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from backchannel import inputs
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
    """The JSON body validated as `model`; `invalid` or `too_large` otherwise.

    Strict, as socket payloads are: an amount is a JSON integer, never `true` or `"100"`.
    """
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise TooLarge(
            f"request body exceeds {request.app[RUNTIME].settings.max_http_body_bytes} bytes"
        ) from exc
    data: Any = inputs.loads(raw) if raw else {}
    return validate(model, data, strict=True)


def validate(model: type[M], data: Any, *, strict: bool = False) -> M:
    """`data` as `model`, or `invalid` with field details.

    `strict` validates as JSON input (strings stay strings, numbers stay numbers); a query
    string is all text, so it is validated lax. Either way every integer the model produced
    must fit the 64-bit columns it is compared with.
    """
    try:
        if strict:
            value = model.model_validate_json(json.dumps(data), strict=True)
        else:
            value = model.model_validate(data)
    except ValidationError as exc:
        raise Invalid("invalid request", validation_details(exc.errors())) from None
    # Serializer warnings are off: attachments validated by a plain validator into one of two
    # models make pydantic warn about the union, and only the values matter here.
    inputs.check(
        value.model_dump(mode="python", exclude_defaults=True, round_trip=True, warnings=False)
    )
    return value


def query(request: web.Request, model: type[M]) -> M:
    """The query string validated as `model` (an empty value is the default)."""
    return validate(model, inputs.query_values(request.query))


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
