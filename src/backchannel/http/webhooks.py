"""`POST /webhooks/stripe`: signed Stripe events, verified on the raw bytes."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import stripe_webhook
from backchannel.http.requests import runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="webhooks")


@routes.route(
    "POST",
    "/webhooks/stripe",
    summary="Stripe events (signature-verified; each event id takes effect once)",
    response=stripe_webhook.WebhookAnswer,
    auth=None,
    errors=(400, 503),
)
async def stripe_events(request: web.Request) -> web.Response:
    """200 once recorded (duplicates and unknown types included); 400 if not from Stripe."""
    raw = await request.read()
    answer = await stripe_webhook.receive(
        runtime(request), raw, request.headers.get("Stripe-Signature")
    )
    return json_response(answer)
