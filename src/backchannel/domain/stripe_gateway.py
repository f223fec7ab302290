"""Outgoing Stripe calls, through the stripe package's async methods only.

With no secret key configured every card flow answers `unavailable` with a clear message;
wallet flows do not need Stripe at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import stripe

from backchannel.errors import Unavailable
from backchannel.server.settings import Settings

log = logging.getLogger(__name__)

NOT_CONFIGURED = (
    "card payments are not configured on this server (BACKCHANNEL_STRIPE_SECRET_KEY is unset); "
    "pay from the wallet instead"
)


def _provider_failed(exc: stripe.StripeError) -> str:
    reason = exc.user_message or exc.__class__.__name__
    return f"the payment provider refused or failed ({reason}); nothing was charged"


@dataclass(frozen=True)
class CheckoutSession:
    """What a client needs to send the payer to Stripe Checkout."""

    id: str
    url: str


class StripeGateway:
    """The Stripe client, or a clear `unavailable` when it is not configured."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._http: stripe.AIOHTTPClient | None = None
        self._client: stripe.StripeClient | None = None
        if settings.stripe_secret_key is not None:
            self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=20))
            bases: dict[str, str] = {}
            if settings.stripe_api_base:
                bases["api"] = settings.stripe_api_base.rstrip("/")
            self._client = stripe.StripeClient(
                settings.stripe_secret_key.get_secret_value(),
                http_client=self._http,
                base_addresses=bases,  # type: ignore[arg-type]
                max_network_retries=1,
            )

    @property
    def configured(self) -> bool:
        """Whether card payments can be taken."""
        return self._client is not None

    def _require(self) -> stripe.StripeClient:
        if self._client is None:
            raise Unavailable(NOT_CONFIGURED)
        return self._client

    def _urls(self) -> dict[str, str]:
        base = self._settings.public_url.rstrip("/")
        return {
            "success_url": f"{base}/payments/success?session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{base}/payments/cancelled",
        }

    async def checkout_payment(
        self,
        *,
        amount_cents: int,
        currency: str,
        name: str,
        payer_id: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> CheckoutSession:
        """A Checkout Session in payment mode; our ids ride on the session and PaymentIntent."""
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency,
                        "unit_amount": amount_cents,
                        "product_data": {"name": name},
                    },
                }
            ],
            "client_reference_id": payer_id,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            **self._urls(),
        }
        return await self._create_session(params, idempotency_key)

    async def checkout_subscription(
        self,
        *,
        price_cents: int,
        currency: str,
        name: str,
        payer_id: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> CheckoutSession:
        """A Checkout Session in subscription mode; metadata is copied to the subscription."""
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency,
                        "unit_amount": price_cents,
                        "recurring": {"interval": "month"},
                        "product_data": {"name": name},
                    },
                }
            ],
            "client_reference_id": payer_id,
            "metadata": metadata,
            # Metadata on the session itself is not copied to the subscription.
            "subscription_data": {"metadata": metadata},
            **self._urls(),
        }
        return await self._create_session(params, idempotency_key)

    async def _create_session(
        self, params: dict[str, Any], idempotency_key: str
    ) -> CheckoutSession:
        client = self._require()
        try:
            session = await client.v1.checkout.sessions.create_async(
                params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            log.warning("stripe checkout failed: %s", exc.__class__.__name__)
            raise Unavailable(_provider_failed(exc)) from exc
        return CheckoutSession(id=str(session.id), url=str(session.url))

    async def cancel_at_period_end(self, stripe_subscription_id: str) -> None:
        """Ask Stripe to end a subscription when its paid period ends."""
        client = self._require()
        try:
            await client.v1.subscriptions.update_async(
                stripe_subscription_id, {"cancel_at_period_end": True}
            )
        except stripe.StripeError as exc:
            log.warning("stripe cancel failed: %s", exc.__class__.__name__)
            raise Unavailable(_provider_failed(exc)) from exc

    async def create_express_account(self, *, creator_id: str, idempotency_key: str) -> str:
        """A Stripe Connect Express account for a creator; returns its id."""
        client = self._require()
        params: dict[str, Any] = {
            "type": "express",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"bc_creator_id": creator_id},
        }
        try:
            account = await client.v1.accounts.create_async(
                params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            log.warning("stripe account creation failed: %s", exc.__class__.__name__)
            raise Unavailable(_provider_failed(exc)) from exc
        return str(account.id)

    async def onboarding_link(self, account_id: str) -> str:
        """An Account Link: where the creator finishes onboarding (single use, short-lived)."""
        client = self._require()
        base = self._settings.public_url.rstrip("/")
        params: dict[str, Any] = {
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": f"{base}/creator/payouts/onboarding?refresh=1",
            "return_url": f"{base}/creator/payouts/onboarding?done=1",
        }
        try:
            link = await client.v1.account_links.create_async(params)  # type: ignore[arg-type]
        except stripe.StripeError as exc:
            log.warning("stripe account link failed: %s", exc.__class__.__name__)
            raise Unavailable(_provider_failed(exc)) from exc
        return str(link.url)

    async def transfer(
        self,
        *,
        amount_cents: int,
        currency: str,
        destination: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> str:
        """A Transfer of platform funds to a connected account; returns its id."""
        client = self._require()
        params: dict[str, Any] = {
            "amount": amount_cents,
            "currency": currency,
            "destination": destination,
            "metadata": metadata,
        }
        try:
            transfer = await client.v1.transfers.create_async(
                params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            log.warning("stripe transfer failed: %s", exc.__class__.__name__)
            raise Unavailable(
                f"the payment provider refused or failed "
                f"({exc.user_message or exc.__class__.__name__}); nothing was paid out"
            ) from exc
        return str(transfer.id)

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._http is not None:
            await self._http.close_async()  # type: ignore[no-untyped-call]
