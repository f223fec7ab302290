"""Subscribing to creators: Stripe Checkout, cancel at period end, and the list."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import subscriptions
from backchannel.http.requests import caller, runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="subscriptions")


@routes.route(
    "POST",
    "/creators/{creator_id}/subscription",
    summary="Start a subscription: a Stripe Checkout Session at the creator's price",
    response=subscriptions.SubscriptionCheckout,
    status=201,
    errors=(400, 401, 404, 409, 503),
)
async def subscribe(request: web.Request) -> web.Response:
    """`{checkout_url, session_id}`."""
    identity = await caller(request)
    creator_id = request.match_info["creator_id"]
    checkout = await subscriptions.start_checkout(runtime(request), identity.user_id, creator_id)
    return json_response(checkout, 201)


@routes.route(
    "DELETE",
    "/creators/{creator_id}/subscription",
    summary="Cancel at the end of the paid period",
    response=subscriptions.SubscriptionView,
    errors=(401, 404, 503),
)
async def cancel(request: web.Request) -> web.Response:
    """The subscription, `cancel_at_period_end: true`."""
    identity = await caller(request)
    creator_id = request.match_info["creator_id"]
    return json_response(await subscriptions.cancel(runtime(request), identity.user_id, creator_id))


@routes.route(
    "GET",
    "/subscriptions",
    summary="The caller's subscriptions with status and period end",
    response=subscriptions.SubscriptionList,
    errors=(401,),
)
async def mine(request: web.Request) -> web.Response:
    """`{items, next_cursor}`."""
    identity = await caller(request)
    return json_response(await subscriptions.list_mine(runtime(request), identity.user_id))
