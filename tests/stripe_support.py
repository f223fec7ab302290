"""Stripe without Stripe: a local fake of the API our client calls, and events signed exactly
as Stripe signs them (`t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<raw body>")>`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from backchannel.server.settings import Settings
from tests.services import RunServices
from tests.support import Api, Sockets, User

WEBHOOK_SECRET = "whsec_test_" + "k" * 32
_ids = itertools.count(1)


def unflatten(form: dict[str, str]) -> dict[str, Any]:
    """`a[b][0][c]=v` form keys (how the stripe client encodes params) as nested data."""
    root: dict[str, Any] = {}
    for key, value in form.items():
        parts = key.replace("]", "").split("[")
        node: Any = root
        for part, following in zip(parts, [*parts[1:], None], strict=True):
            if following is None:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return root


@dataclass
class FakeStripe:
    """Records what our server asked Stripe for and answers like Stripe would."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Idempotency-Key -> the first answer, as Stripe replays it.
    answered: dict[str, dict[str, Any]] = field(default_factory=dict)
    refuse_transfers: bool = False
    url: str = ""

    def app(self) -> web.Application:
        """The fake's HTTP app."""
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_post("/v1/subscriptions/{id}", self._update_subscription)
        app.router.add_post("/v1/accounts", self._create_account)
        app.router.add_post("/v1/account_links", self._create_account_link)
        app.router.add_post("/v1/transfers", self._create_transfer)
        return app

    def _replay(self, key: str | None, make: Any) -> web.Response:
        """Stripe's idempotency: the same key answers the first result."""
        if key and key in self.answered:
            return web.json_response(self.answered[key])
        answer = make()
        if key:
            self.answered[key] = answer
        return web.json_response(answer)

    async def _create_account(self, request: web.Request) -> web.Response:
        params = await self._record(request)

        def make() -> dict[str, Any]:
            account = {
                "id": f"acct_test_{next(_ids)}",
                "object": "account",
                "type": params["type"],
                "metadata": params.get("metadata", {}),
                "payouts_enabled": False,
            }
            self.accounts[account["id"]] = account
            return account

        return self._replay(request.headers.get("Idempotency-Key"), make)

    async def _create_account_link(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        return web.json_response(
            {
                "object": "account_link",
                "url": f"https://connect.stripe.test/setup/e/{params['account']}/{next(_ids)}",
                "expires_at": int(time.time()) + 300,
            }
        )

    async def _create_transfer(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        if self.refuse_transfers:
            return web.json_response(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "Insufficient funds in your Stripe balance",
                        "code": "balance_insufficient",
                    }
                },
                status=400,
            )

        def make() -> dict[str, Any]:
            transfer = {
                "id": f"tr_test_{next(_ids)}",
                "object": "transfer",
                "amount": int(params["amount"]),
                "currency": params["currency"],
                "destination": params["destination"],
                "metadata": params.get("metadata", {}),
                "amount_reversed": 0,
            }
            self.transfers[transfer["id"]] = transfer
            return transfer

        return self._replay(request.headers.get("Idempotency-Key"), make)

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        """What our server sent to one endpoint, in order."""
        return [r for r in self.requests if r["path"] == path]

    async def _record(self, request: web.Request) -> dict[str, Any]:
        form = dict(await request.post())
        params = unflatten({k: str(v) for k, v in form.items()})
        self.requests.append(
            {
                "path": request.path,
                "params": params,
                "auth": request.headers.get("Authorization", ""),
                "idempotency_key": request.headers.get("Idempotency-Key"),
            }
        )
        return params

    async def _create_session(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        session_id = f"cs_test_{next(_ids)}"
        item = params["line_items"]["0"]
        session = {
            "id": session_id,
            "object": "checkout.session",
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "mode": params["mode"],
            "metadata": params.get("metadata", {}),
            "client_reference_id": params.get("client_reference_id"),
            "amount_total": int(item["price_data"]["unit_amount"]),
            "currency": item["price_data"]["currency"],
            "payment_status": "unpaid",
            "status": "open",
            "params": params,
        }
        self.sessions[session_id] = session
        return web.json_response({k: v for k, v in session.items() if k != "params"})

    async def _update_subscription(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        return web.json_response(
            {
                "id": request.match_info["id"],
                "object": "subscription",
                "cancel_at_period_end": params.get("cancel_at_period_end") == "true",
            }
        )

    def last_session(self) -> dict[str, Any]:
        """The newest Checkout Session created."""
        return list(self.sessions.values())[-1]


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API on a real local port."""
    fake = FakeStripe()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


def with_stripe(settings: Settings, fake: FakeStripe) -> Settings:
    """Settings with Stripe pointed at the fake, and dev top-ups on."""
    return settings.model_copy(
        update={
            "stripe_secret_key": SecretStr("sk_test_fake"),
            "stripe_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "stripe_api_base": fake.url,
            "dev_topup": True,
            # The tests send many paid messages quickly; limits are tested elsewhere.
            "message_rate_limit": "1000/1s:1000",
            "checkout_rate_limit": "1000/1s:1000",
            "broadcast_rate_limit": "1000/1s:1000",
        }
    )


def sign(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe would send for this body."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def event(type_: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """A Stripe event envelope around an object."""
    return {
        "id": f"evt_test_{next(_ids)}_{int(time.time() * 1000)}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "type": type_,
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "data": {"object": obj},
    }


class Webhooks:
    """Posts signed events to the real endpoint."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def post_raw(self, body: bytes, signature: str | None) -> tuple[int, Any]:
        """Post bytes with this signature header (or none)."""
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        return await self.api.call("POST", "/api/v1/webhooks/stripe", data=body, headers=headers)

    async def send(self, evt: dict[str, Any]) -> dict[str, Any]:
        """Sign and post an event; it must be answered 200."""
        body = json.dumps(evt).encode()
        status, answer = await self.post_raw(body, sign(body))
        assert status == 200, answer
        return dict(answer)

    async def subscribe(
        self, fan: User, creator: User, *, sub_id: str | None = None, period_end: int | None = None
    ) -> str:
        """What Stripe sends when a fan completes a subscription Checkout."""
        sub_id = sub_id or f"sub_test_{next(_ids)}"
        end = period_end or int(time.time()) + 30 * 86400
        metadata = {"bc_kind": "subscription", "bc_user_id": fan.id, "bc_creator_id": creator.id}
        await self.send(
            event(
                "checkout.session.completed",
                {
                    "id": f"cs_test_{next(_ids)}",
                    "object": "checkout.session",
                    "mode": "subscription",
                    "payment_status": "paid",
                    "client_reference_id": fan.id,
                    "subscription": sub_id,
                    "metadata": metadata,
                },
            )
        )
        await self.send(
            event("customer.subscription.created", subscription(sub_id, metadata, "active", end))
        )
        return sub_id

    async def pay_session(self, session: dict[str, Any], payment_intent: str | None = None) -> str:
        """`checkout.session.completed` (paid) for a payment-mode session the fake created."""
        pi = payment_intent or f"pi_test_{next(_ids)}"
        obj = {k: v for k, v in session.items() if k != "params"}
        obj.update(payment_status="paid", status="complete", payment_intent=pi)
        await self.send(event("checkout.session.completed", obj))
        return pi


def subscription(
    sub_id: str, metadata: dict[str, str], status: str, period_end: int, *, cancel: bool = False
) -> dict[str, Any]:
    """A subscription object as current API versions shape it (period on the items)."""
    return {
        "id": sub_id,
        "object": "subscription",
        "status": status,
        "metadata": metadata,
        "cancel_at_period_end": cancel,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{sub_id}",
                    "current_period_end": period_end,
                    "price": {"unit_amount": 900, "currency": "usd"},
                }
            ],
        },
    }


async def ledger_problems(database_url: str) -> list[str]:
    """Every discrepancy `backchannel ledger check` would report, read in-process."""
    from backchannel.persistence import ledger_check

    conn = await asyncpg.connect(database_url)
    try:
        return (await ledger_check.check(conn)).problems
    finally:
        await conn.close()


async def ledger_check_cli(
    services: RunServices, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    """Run the real `backchannel ledger check` (its own event loop, so in a thread)."""
    from backchannel.server.cli import main

    for name in list(os.environ):
        if name.startswith("BACKCHANNEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", services.database_url)
    monkeypatch.setenv("BACKCHANNEL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BACKCHANNEL_MIGRATE_ON_START", "false")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = await asyncio.to_thread(main, ["ledger", "check"])
    return code, out.getvalue()


async def send_paid(
    sockets: Sockets,
    sender: User,
    recipient: User,
    price_cents: int,
    body: str = "secret",
    count: int = 1,
) -> list[str]:
    """Paid messages sent with the real `message:send` in the pair's 1:1 conversation."""
    chat = await sockets.connect("/chat", sender)
    try:
        opened = await chat.call("conversation:open", {"participant_ids": [recipient.id]})
        assert opened["ok"], opened
        ids = []
        for _ in range(count):
            ack = await chat.call(
                "message:send",
                {
                    "conversation_id": opened["data"]["id"],
                    "client_id": f"paid-{next(_ids)}",
                    "body": body,
                    "price_cents": price_cents,
                    "preview_text": "a peek",
                },
            )
            assert ack["ok"], ack
            ids.append(str(ack["data"]["id"]))
        return ids
    finally:
        await chat.disconnect()


async def paid_message(sockets: Sockets, sender: User, recipient: User, price_cents: int) -> str:
    """One paid message from `sender` to `recipient`; returns its id."""
    return (await send_paid(sockets, sender, recipient, price_cents))[0]


@pytest.fixture(name="settings")
def stripe_settings(settings: Settings, fake_stripe: FakeStripe) -> Settings:
    """Stripe pointed at the fake; dev top-ups on. Import it to use it in a test module."""
    return with_stripe(settings, fake_stripe)


@pytest.fixture
async def balanced_ledger(
    services: RunServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """After the test, `backchannel ledger check` passes: every money test ends reconciled."""
    yield
    code, printed = await ledger_check_cli(services, tmp_path, monkeypatch)
    assert code == 0, printed
    assert "ledger OK" in printed


def charge_refunded(
    pi: str,
    amount_refunded: int,
    refunds: list[tuple[str, int, str]] | None = None,
    *,
    charge_id: str | None = None,
    amount: int = 1000,
) -> dict[str, Any]:
    """`charge.refunded`: the running total, and (when given) the Refund objects listed."""
    obj: dict[str, Any] = {
        "id": charge_id or f"ch_{pi}",
        "object": "charge",
        "payment_intent": pi,
        "amount": amount,
        "amount_refunded": amount_refunded,
        "refunded": amount_refunded >= amount,
        "metadata": {},
    }
    if refunds is not None:
        obj["refunds"] = {
            "object": "list",
            "data": [
                {"id": rid, "object": "refund", "amount": cents, "status": status}
                for rid, cents, status in refunds
            ],
        }
    return event("charge.refunded", obj)


def refund_updated(
    pi: str, refund_id: str, amount: int, status: str, *, type_: str = "charge.refund.updated"
) -> dict[str, Any]:
    """A Refund's own update (`charge.refund.updated`, `refund.updated`)."""
    return event(
        type_,
        {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "status": status,
            "payment_intent": pi,
            "charge": f"ch_{pi}",
        },
    )


def dispute(
    type_: str, pi: str, amount: int, *, dispute_id: str | None = None, status: str = ""
) -> dict[str, Any]:
    """A `charge.dispute.*` event for the charge of `pi`."""
    return event(
        f"charge.dispute.{type_}",
        {
            "id": dispute_id or f"dp_{pi}",
            "object": "dispute",
            "amount": amount,
            "currency": "usd",
            "payment_intent": pi,
            "charge": f"ch_{pi}",
            "status": status or {"closed": "won"}.get(type_, "needs_response"),
        },
    )
