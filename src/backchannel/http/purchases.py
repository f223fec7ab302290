"""`/purchases`, `/wallet` and the dev-only top-up."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import payments, wallets
from backchannel.domain.payment_models import (
    CardCheckout,
    PurchaseRequest,
    PurchaseView,
    TopupRequest,
    WalletBalance,
    WalletView,
)
from backchannel.http.requests import caller, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="payments")


@routes.route(
    "POST",
    "/purchases",
    summary="Buy a paid message or content, tip, or top up: from the wallet or by card",
    body=PurchaseRequest,
    response=(PurchaseView, CardCheckout),
    status=201,
    errors=(400, 401, 402, 404, 409, 503),
)
async def create(request: web.Request) -> web.Response:
    """Wallet: the completed purchase. Card: `{purchase_id, checkout_url, session_id}`."""
    identity = await caller(request)
    body = await read_body(request, PurchaseRequest)
    return json_response(await payments.purchase(runtime(request), identity.user_id, body), 201)


@routes.route(
    "GET",
    "/wallet",
    summary="The caller's wallet balance and newest entries",
    response=WalletView,
    errors=(401,),
)
async def wallet(request: web.Request) -> web.Response:
    """The wallet statement."""
    identity = await caller(request)
    return json_response(await wallets.wallet_statement(runtime(request), identity.user_id))


@routes.route(
    "POST",
    "/dev/wallet/topup",
    summary="Dev only (BACKCHANNEL_DEV_TOPUP=1): credit the caller's wallet without Stripe",
    body=TopupRequest,
    response=WalletBalance,
    errors=(400, 401, 404),
)
async def dev_topup(request: web.Request) -> web.Response:
    """Credit the caller's wallet; 404 unless enabled."""
    identity = await caller(request)
    body = await read_body(request, TopupRequest)
    return json_response(await wallets.dev_topup(runtime(request), identity.user_id, body))
