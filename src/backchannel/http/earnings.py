"""`/creator/earnings*` and `/creator/payouts*`: what a creator earned, and getting paid."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import earnings, payouts
from backchannel.domain.earnings import Earnings, EarningsPage, EntriesQuery
from backchannel.domain.payouts import PayoutAccount, PayoutList, PayoutRequest, PayoutView
from backchannel.http.requests import caller, query, read_body, runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="creator money")


@routes.route(
    "GET",
    "/creator/earnings",
    summary="The caller's earnings: available, pending (in the hold), paid out, by kind",
    response=Earnings,
    errors=(401, 403),
)
async def summary(request: web.Request) -> web.Response:
    """Totals over the creator's ledger accounts."""
    identity = await caller(request)
    return json_response(await earnings.summary(runtime(request), identity.user_id, identity.role))


@routes.route(
    "GET",
    "/creator/earnings/entries",
    summary="The ledger lines of the caller's earnings, newest first, each with its sale",
    response=EarningsPage,
    query=EntriesQuery,
    errors=(400, 401, 403),
)
async def entries(request: web.Request) -> web.Response:
    """Pass `next_cursor` back as `cursor` for the next page."""
    identity = await caller(request)
    page = query(request, EntriesQuery)
    return json_response(
        await earnings.entries(runtime(request), identity.user_id, identity.role, page)
    )


@routes.route(
    "POST",
    "/creator/payouts/account",
    summary="Create (once) the caller's Stripe Express account; a fresh onboarding link",
    response=PayoutAccount,
    status=201,
    errors=(401, 403, 503),
)
async def account(request: web.Request) -> web.Response:
    """`{account_id, onboarding_url, payouts_enabled}`."""
    identity = await caller(request)
    result = await payouts.open_account(runtime(request), identity.user_id, identity.role)
    return json_response(result, status=201)


@routes.route(
    "POST",
    "/creator/payouts",
    summary="Pay out available earnings (default: all) by Stripe Transfer",
    body=PayoutRequest,
    response=PayoutView,
    status=201,
    errors=(400, 401, 403, 409, 503),
)
async def pay_out(request: web.Request) -> web.Response:
    """409 with `details.available_cents` beyond what is available, or if not enabled."""
    identity = await caller(request)
    body = await read_body(request, PayoutRequest)
    result = await payouts.pay_out(runtime(request), identity.user_id, identity.role, body)
    return json_response(result, status=201)


@routes.route(
    "GET",
    "/creator/payouts",
    summary="The caller's payouts, newest first",
    response=PayoutList,
    errors=(401, 403),
)
async def list_payouts(request: web.Request) -> web.Response:
    """Every payout with its transfer."""
    identity = await caller(request)
    return json_response(
        await payouts.list_payouts(runtime(request), identity.user_id, identity.role)
    )
