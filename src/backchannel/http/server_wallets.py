"""`/server/wallets/*`: other backends credit and debit users' wallets (server API key)."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import api_keys, server_wallets
from backchannel.domain.payment_models import WalletBalance
from backchannel.domain.server_wallets import WalletChange, WalletChangeResult
from backchannel.http.requests import bearer_token, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response
from backchannel.persistence.wallet_grants import Direction

routes = RouteGroup(tag="server wallets")


async def _change(request: web.Request, direction: Direction) -> web.Response:
    rt = runtime(request)
    key = await api_keys.authenticate_key(rt.db, bearer_token(request))
    body = await read_body(request, WalletChange)
    user_id = request.match_info["user_id"]
    result = await server_wallets.change(rt, key.name, user_id, direction, body)
    return json_response(result, status=201)


@routes.route(
    "POST",
    "/server/wallets/{user_id}/credits",
    summary="Credit a user's wallet, once per idempotency key (server API key)",
    body=WalletChange,
    response=WalletChangeResult,
    status=201,
    auth="apiKey",
    errors=(400, 401, 404, 409),
)
async def credit(request: web.Request) -> web.Response:
    """201 `{entry_id, balance_cents, version}`; a repeat answers the first result."""
    return await _change(request, "credit")


@routes.route(
    "POST",
    "/server/wallets/{user_id}/debits",
    summary="Debit a user's wallet, never below zero, once per idempotency key (server API key)",
    body=WalletChange,
    response=WalletChangeResult,
    status=201,
    auth="apiKey",
    errors=(400, 401, 402, 404, 409),
)
async def debit(request: web.Request) -> web.Response:
    """201 `{entry_id, balance_cents, version}`; 402 and nothing written beyond the balance."""
    return await _change(request, "debit")


@routes.route(
    "GET",
    "/server/wallets/{user_id}",
    summary="A user's wallet balance and version (server API key)",
    response=WalletBalance,
    auth="apiKey",
    errors=(401, 404),
)
async def balance(request: web.Request) -> web.Response:
    """`{balance_cents, currency, version}`."""
    rt = runtime(request)
    await api_keys.authenticate_key(rt.db, bearer_token(request))
    return json_response(await server_wallets.balance(rt, request.match_info["user_id"]))
