"""Request ids, access logs, metrics, CORS, and the contract's error shape for every failure."""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from backchannel import inputs
from backchannel.errors import (
    BackchannelError,
    ErrorCode,
    Internal,
    Invalid,
    NotFound,
    RateLimited,
    TooLarge,
)
from backchannel.http.requests import bearer_token, client_ip
from backchannel.server.keys import RUNTIME
from backchannel.server.logs import correlation_id
from backchannel.server.ratelimit import Rate

log = logging.getLogger("backchannel.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STATUS_CODES = {
    400: ErrorCode.INVALID,
    401: ErrorCode.UNAUTHORIZED,
    402: ErrorCode.PAYMENT_REQUIRED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.INVALID,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}


def error_response(error: BackchannelError, status: int | None = None) -> web.Response:
    """`{"error": {...}}` with the status its code maps to."""
    response = web.json_response({"error": error.to_dict()}, status=status or error.http_status)
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(max(1, -(-error.retry_after_ms // 1000)))
    return response


def _allowed(exc: web.HTTPException) -> str:
    """The methods the document lists for the route (aiohttp also adds HEAD to every GET)."""
    methods = [m.strip() for m in exc.headers.get("Allow", "").split(",") if m.strip()]
    return ", ".join(sorted({m for m in methods if m != "HEAD"} | {"OPTIONS"}))


def _from_http_exception(exc: web.HTTPException, method: str = "GET") -> web.Response:
    if exc.status == 404:
        return error_response(NotFound("no such route"))
    if exc.status == 413:
        return error_response(TooLarge("request body too large"))
    if exc.status == 405:
        allowed = _allowed(exc)
        if method == "OPTIONS":
            # Any route answers OPTIONS with what it allows, as CORS preflights already are.
            options = web.Response(status=204)
            options.headers["Allow"] = allowed
            return options
        response = error_response(Invalid(f"method not allowed; allowed: {allowed}"), 405)
        response.headers["Allow"] = allowed
        return response
    code = _STATUS_CODES.get(
        exc.status, ErrorCode.INTERNAL if exc.status >= 500 else ErrorCode.INVALID
    )
    return web.json_response(
        {"error": {"code": code.value, "message": exc.reason}}, status=exc.status
    )


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id in, out and on every log line; one access log line; metrics by route."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    token = correlation_id.set(request_id)
    started = time.perf_counter()
    status = 500
    # The drain waits for open API requests; engine.io's long-polls and websockets are the
    # sockets it is closing, not work to wait for.
    inflight = None if request.path.startswith("/socket.io") else request.app[RUNTIME].inflight
    if inflight is not None:
        inflight.enter()
    try:
        response = await _contract_errors(request, handler)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-ID"] = request_id
        return response
    finally:
        if inflight is not None:
            inflight.leave()
        elapsed = time.perf_counter() - started
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "(unmatched)"
        metrics = request.app[RUNTIME].metrics
        metrics.http_requests.labels(request.method, route, str(status)).inc()
        metrics.http_latency.labels(request.method, route).observe(elapsed)
        if not request.path.startswith("/socket.io"):
            log.info(
                "http",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                },
            )
        correlation_id.reset(token)


async def _contract_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        for name, value in request.match_info.items():
            inputs.path_id(value, name)  # `/profiles/%00` never reaches Postgres
        return await handler(request)
    except BackchannelError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc, request.method)
    except Exception:
        ref = correlation_id.get() or uuid.uuid4().hex
        log.exception("unhandled error", extra={"path": request.path})
        return error_response(Internal(f"internal error (ref {ref})"))


def cors(allowed: list[str]) -> Middleware:
    """Answer preflights and add CORS headers for the configured origins."""
    allow_all = "*" in allowed

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/socket.io"):
            return await handler(request)  # Engine.IO answers CORS for its own path
        origin = request.headers.get("Origin")
        permitted = origin is not None and (allow_all or origin in allowed)
        if (
            request.method == "OPTIONS"
            and permitted
            and "Access-Control-Request-Method" in request.headers
        ):
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, PUT, DELETE"
            response.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, X-Request-ID"
            )
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if permitted and origin is not None and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Expose-Headers"] = "X-Request-ID, Retry-After"
        return response

    return middleware


# Not limited per IP here: Engine.IO (polling would count every long-poll; connects are limited
# per namespace), probes and scrapes, and callers that prove a secret on every request (Stripe's
# signed webhooks; publishers' API keys) and are often one busy IP.
_UNLIMITED_PREFIXES = (
    "/socket.io",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/webhooks/",
    "/api/v1/publish",
    "/api/v1/server/",
)


def rate_limits(ip_rate: Rate, user_rate: Rate) -> Middleware:
    """HTTP requests per client IP and per authenticated user, in one limiter round trip."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" or request.path.startswith(_UNLIMITED_PREFIXES):
            return await handler(request)
        rt = request.app[RUNTIME]
        checks = [(f"http:ip:{client_ip(request)}", ip_rate)]
        token = bearer_token(request)
        if token is not None:
            # Only a token that verifies names a user; a forged `sub` must not drain someone
            # else's budget. The route verifies it again and answers 401 if it is bad.
            with contextlib.suppress(BackchannelError):
                claims = await rt.tokens.verify(token)
                checks.append((f"http:user:{claims.user_id}", user_rate))
        await rt.limiter.hit_all(checks)
        return await handler(request)

    return middleware


_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# The server serves no HTML of its own; whatever HTML it may answer with loads nothing.
_HTML_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_HSTS = "max-age=31536000; includeSubDomains"


def security_headers(*, https: bool) -> Middleware:
    """The same defensive headers on every response; HSTS when the public URL is https."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if not response.prepared:
            response.headers.update(_SECURITY_HEADERS)
            if response.content_type == "text/html":
                response.headers["Content-Security-Policy"] = _HTML_CSP
            if https:
                response.headers["Strict-Transport-Security"] = _HSTS
        return response

    return middleware
