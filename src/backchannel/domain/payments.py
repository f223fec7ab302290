"""Money moving: wallet unlocks, card checkouts, tips, top-ups, and what a payment changes.

Every operation writes its ledger movement, its effect (an unlock, a credit) and the outbox
rows that tell sockets, in one transaction; sockets hear after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backchannel.domain import delivery, notices
from backchannel.domain.chat import get_message_for
from backchannel.domain.delivery import Deliveries
from backchannel.domain.fees import Split, split_sale
from backchannel.domain.stripe_gateway import NOT_CONFIGURED
from backchannel.errors import Conflict, Invalid, NotFound, PaymentRequired, Unavailable
from backchannel.persistence import content as content_store
from backchannel.persistence import ledger, purchases, unlocks, users
from backchannel.persistence.database import Connection
from backchannel.persistence.ledger import LedgerEntry
from backchannel.persistence.purchases import Purchase
from backchannel.rooms.names import Namespace
from backchannel.server.ratelimit import Rate

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

MAX_AMOUNT_CENTS = 1_000_000
# Stripe's smallest charge in most currencies is 50 cents.
MIN_CARD_CENTS = 50

Cents = Annotated[int, Field(ge=1, le=MAX_AMOUNT_CENTS)]
BuyableKind = Literal["ppv_message", "content", "tip", "wallet_topup"]


class PurchaseRequest(BaseModel):
    """`POST /purchases`."""

    model_config = ConfigDict(extra="forbid")
    kind: BuyableKind
    target_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    amount_cents: Cents | None = None
    pay_with: Literal["card", "wallet"]


class UnlockRequest(BaseModel):
    """`ppv:unlock`."""

    model_config = ConfigDict(extra="forbid")
    message_id: Annotated[str, Field(min_length=1, max_length=40)]
    pay_with: Literal["wallet"] = "wallet"


class TopupRequest(BaseModel):
    """`POST /dev/wallet/topup`."""

    model_config = ConfigDict(extra="forbid")
    amount_cents: Cents


class PurchaseView(BaseModel):
    """A purchase as its buyer sees it."""

    id: str
    kind: str
    target_id: str | None
    creator_id: str | None
    amount_cents: int
    currency: str
    pay_with: str
    status: str
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, purchase: Purchase) -> PurchaseView:
        """The public view of a purchase row."""
        return cls.model_validate(purchase.model_dump())


class CardCheckout(BaseModel):
    """Where to send the payer: Stripe Checkout."""

    purchase_id: str
    status: Literal["pending"] = "pending"
    checkout_url: str
    session_id: str


class WalletView(BaseModel):
    """`GET /wallet`."""

    balance_cents: int
    currency: str
    entries: list[LedgerEntry]


class WalletBalance(BaseModel):
    """`wallet:get` and the `wallet:balance` event."""

    balance_cents: int
    currency: str


@dataclass(frozen=True)
class Target:
    """What a payment buys, resolved and checked."""

    kind: BuyableKind
    target_id: str | None
    creator_id: str | None
    amount_cents: int
    currency: str
    name: str
    conversation_id: str | None = None


def parse_id(value: str | None, field: str) -> int:
    """A numeric id, or `not_found` naming `field`."""
    try:
        number = int(value or "")
    except ValueError:
        raise NotFound(f"no such {field}") from None
    if number <= 0 or number >= 2**63:
        raise NotFound(f"no such {field}")
    return number


async def resolve_target(conn: Connection, buyer_id: str, request: PurchaseRequest) -> Target:
    """What the buyer asks to pay for, or the error explaining why they cannot."""
    if request.kind == "ppv_message":
        message = await unlocks.message_for_viewer(
            conn, parse_id(request.target_id, "message"), buyer_id
        )
        if message is None or not message.is_member:
            raise NotFound("no such message")
        if message.price_cents is None:
            raise Invalid("this message is free", [{"field": "target_id", "message": "not paid"}])
        if message.sender_id == buyer_id:
            raise Conflict("you sent this message; it is already yours")
        if message.unlocked:
            raise Conflict("you already unlocked this message")
        return Target(
            "ppv_message",
            message.id,
            message.sender_id,
            message.price_cents,
            message.currency,
            "Paid message",
            message.conversation_id,
        )
    if request.kind == "content":
        item = await content_store.get(conn, parse_id(request.target_id, "content"))
        if item is None:
            raise NotFound("no such content")
        if item.visibility != "ppv" or item.price_cents is None:
            raise Invalid(
                "only pay-per-view content is bought; subscribe to see subscriber content",
                [{"field": "target_id", "message": f"content is {item.visibility}"}],
            )
        if item.creator_id == buyer_id:
            raise Conflict("this is your own content")
        if await unlocks.content_unlocked(conn, int(item.id), buyer_id):
            raise Conflict("you already own this content")
        return Target(
            "content",
            item.id,
            item.creator_id,
            item.price_cents,
            item.currency,
            item.title or "Content",
        )
    if request.amount_cents is None:
        raise Invalid(
            "amount_cents is required", [{"field": "amount_cents", "message": "required"}]
        )
    if request.kind == "tip":
        creator = await users.get_active_user(conn, request.target_id or "")
        if creator is None or creator.role != "creator":
            raise NotFound("no such creator")
        if creator.id == buyer_id:
            raise Invalid("you cannot tip yourself", [{"field": "target_id", "message": "self"}])
        return Target(
            "tip",
            creator.id,
            creator.id,
            request.amount_cents,
            ledger.WALLET_CURRENCY,
            f"Tip for {creator.display_name}",
        )
    return Target(
        "wallet_topup", None, None, request.amount_cents, ledger.WALLET_CURRENCY, "Wallet top-up"
    )


def card_details(rt: Runtime, target: Target, balance_cents: int | None = None) -> dict[str, Any]:
    """`payment_required` details: the price, the balance, and how to pay instead."""
    details: dict[str, Any] = {
        "price_cents": target.amount_cents,
        "currency": target.currency,
        "pay_with": ["card"] if rt.stripe.configured else [],
        "card": {
            "method": "POST",
            "path": "/api/v1/purchases",
            "body": {"kind": target.kind, "target_id": target.target_id, "pay_with": "card"},
            "available": rt.stripe.configured,
        },
    }
    if target.kind == "tip":
        details["card"]["body"]["amount_cents"] = target.amount_cents
    if balance_cents is not None:
        details["balance_cents"] = balance_cents
        details["wallet_topup"] = {
            "method": "POST",
            "path": "/api/v1/purchases",
            "body": {
                "kind": "wallet_topup",
                "amount_cents": max(target.amount_cents - balance_cents, MIN_CARD_CENTS),
                "pay_with": "card",
            },
        }
    return details


async def sale_effects(
    rt: Runtime,
    fx: Deliveries,
    purchase: Purchase,
    balances: dict[str, int],
) -> dict[str, Any] | None:
    """Unlock what was bought and queue the live events; returns the whole message if any."""
    conn = fx.conn
    whole: dict[str, Any] | None = None
    buyer = purchase.buyer_id
    if purchase.kind == "ppv_message" and purchase.target_id is not None:
        message = await unlocks.message_for_viewer(conn, int(purchase.target_id), buyer)
        assert message is not None
        whole = await message_view(rt, conn, message.id, buyer)
        await fx.to_user(
            Namespace.PPV,
            buyer,
            "ppv:unlocked",
            {
                "message_id": message.id,
                "conversation_id": message.conversation_id,
                "message": whole,
            },
        )
    if purchase.kind in ("ppv_message", "content") and purchase.creator_id:
        event = {
            "message_id" if purchase.kind == "ppv_message" else "content_id": purchase.target_id,
            "kind": purchase.kind,
            "buyer_id": buyer,
            "amount_cents": purchase.amount_cents,
            "currency": purchase.currency,
            "purchase_id": purchase.id,
        }
        await fx.to_user(Namespace.PPV, purchase.creator_id, "ppv:purchased", event)
        what = "message" if purchase.kind == "ppv_message" else "content"
        await notices.notify(
            conn,
            fx,
            purchase.creator_id,
            "ppv.purchased",
            "New purchase",
            event,
            body=f"A fan unlocked your {what} for "
            f"{notices.money(purchase.amount_cents, purchase.currency)}",
            dedupe_key=f"purchase:{purchase.id}",
        )
    if purchase.kind == "content" and purchase.target_id is not None:
        await fx.to_user(
            Namespace.PPV, buyer, "content:unlocked", {"content_id": purchase.target_id}
        )
    if purchase.kind == "tip" and purchase.creator_id:
        event = {
            "purchase_id": purchase.id,
            "from_user_id": buyer,
            "amount_cents": purchase.amount_cents,
            "currency": purchase.currency,
        }
        await fx.to_user(Namespace.PPV, purchase.creator_id, "tip:received", event)
        await notices.notify(
            conn,
            fx,
            purchase.creator_id,
            "tip.received",
            "New tip",
            event,
            body=f"A fan tipped you {notices.money(purchase.amount_cents, purchase.currency)}",
            dedupe_key=f"purchase:{purchase.id}",
        )
    for user_id, balance in balances.items():
        await fx.to_user(
            Namespace.PPV,
            user_id,
            "wallet:balance",
            {"balance_cents": balance, "currency": ledger.WALLET_CURRENCY},
        )
    return whole


async def grant(conn: Connection, purchase: Purchase) -> bool:
    """Give the buyer what they paid for; False if they already had it."""
    if purchase.kind == "ppv_message" and purchase.target_id is not None:
        return await unlocks.unlock_message(conn, int(purchase.target_id), purchase.buyer_id)
    if purchase.kind == "content" and purchase.target_id is not None:
        return await unlocks.unlock_content(conn, int(purchase.target_id), purchase.buyer_id)
    return True


async def message_view(
    rt: Runtime, conn: Connection, message_id: str, viewer_id: str
) -> dict[str, Any]:
    """The message as the viewer sees it now, through chat's one per-viewer rendering."""
    view = await get_message_for(rt, conn, message_id, viewer_id)
    return view.model_dump(mode="json")


def sale_legs(source: str, purchase: Purchase, split: Split) -> list[tuple[str, int]]:
    """The ledger legs of a sale paid from `source` (a wallet, Stripe clearing, dev grants)."""
    if purchase.kind == "wallet_topup":
        return [
            (source, -split.amount_cents),
            (ledger.wallet_account(purchase.buyer_id), split.amount_cents),
        ]
    assert purchase.creator_id is not None
    return [
        (source, -split.amount_cents),
        (ledger.earnings_account(purchase.creator_id), split.creator_cents),
        (ledger.PLATFORM_FEE, split.fee_cents),
    ]


async def pay_from_wallet(
    rt: Runtime, buyer_id: str, request: PurchaseRequest
) -> tuple[Purchase, dict[str, Any] | None]:
    """Buy, unlock and tell, in one transaction; no overdraft however many run at once."""
    if request.kind == "wallet_topup":
        raise Invalid(
            "a wallet is topped up by card", [{"field": "pay_with", "message": "use card"}]
        )
    async with rt.db.transaction() as conn:
        target = await resolve_target(conn, buyer_id, request)
        if target.currency != ledger.WALLET_CURRENCY:
            raise PaymentRequired(
                f"the wallet holds {ledger.WALLET_CURRENCY}; pay for this by card",
                card_details(rt, target),
            )
        split = split_sale(target.amount_cents, rt.settings.platform_fee_percent)
        purchase = await purchases.insert(
            conn,
            buyer_id=buyer_id,
            kind=target.kind,
            target_id=target.target_id,
            creator_id=target.creator_id,
            amount_cents=split.amount_cents,
            fee_cents=split.fee_cents,
            currency=target.currency,
            pay_with="wallet",
            status="completed",
        )
        if not await grant(conn, purchase):
            raise Conflict("you already unlocked this")
        balances = await ledger.post(
            conn,
            sale_legs(ledger.wallet_account(buyer_id), purchase, split),
            currency=target.currency,
            memo=f"{target.kind} {target.target_id or ''}".strip(),
            purchase_id=purchase.pk,
        )
        if balances is None:
            wallet = await ledger.get_wallet(conn, buyer_id)
            raise PaymentRequired(
                f"your wallet holds {wallet.balance_cents} cents; this costs {target.amount_cents}",
                card_details(rt, target, wallet.balance_cents),
            )
        fx = Deliveries(conn)
        whole = await sale_effects(rt, fx, purchase, balances)
    await delivery.finish(rt, fx)
    return purchase, whole


async def unlock_message(rt: Runtime, buyer_id: str, request: UnlockRequest) -> dict[str, Any]:
    """`ppv:unlock`: pay from the wallet, return the whole message."""
    _, whole = await pay_from_wallet(
        rt,
        buyer_id,
        PurchaseRequest(kind="ppv_message", target_id=request.message_id, pay_with="wallet"),
    )
    assert whole is not None
    return whole


async def start_card_payment(rt: Runtime, buyer_id: str, request: PurchaseRequest) -> CardCheckout:
    """A pending purchase and a Stripe Checkout Session for it."""
    if not rt.stripe.configured:
        raise Unavailable(NOT_CONFIGURED)
    await rt.limiter.hit(f"checkout:{buyer_id}", Rate.parse(rt.settings.checkout_rate_limit))
    async with rt.db.transaction() as conn:
        target = await resolve_target(conn, buyer_id, request)
        if target.amount_cents < MIN_CARD_CENTS:
            raise Invalid(
                f"card payments start at {MIN_CARD_CENTS} cents",
                [{"field": "amount_cents", "message": f"at least {MIN_CARD_CENTS}"}],
            )
        purchase = await purchases.insert(
            conn,
            buyer_id=buyer_id,
            kind=target.kind,
            target_id=target.target_id,
            creator_id=target.creator_id,
            amount_cents=target.amount_cents,
            fee_cents=0,
            currency=target.currency,
            pay_with="card",
            status="pending",
        )
    metadata = {"bc_kind": target.kind, "bc_user_id": buyer_id, "bc_purchase_id": purchase.id}
    if target.creator_id:
        metadata["bc_creator_id"] = target.creator_id
    if target.target_id and target.kind != "tip":
        metadata["bc_target_id"] = target.target_id
    try:
        session = await rt.stripe.checkout_payment(
            amount_cents=target.amount_cents,
            currency=target.currency,
            name=target.name,
            payer_id=buyer_id,
            metadata=metadata,
            idempotency_key=f"bc-purchase-{purchase.id}",
        )
    except Exception:
        async with rt.db.transaction() as conn:
            await purchases.set_status(conn, purchase.pk, "failed")
        raise
    async with rt.db.transaction() as conn:
        await purchases.set_session(conn, purchase.pk, session.id)
    return CardCheckout(purchase_id=purchase.id, checkout_url=session.url, session_id=session.id)


async def purchase(rt: Runtime, buyer_id: str, request: PurchaseRequest) -> BaseModel:
    """`POST /purchases`: the completed purchase (wallet) or where to pay (card)."""
    if request.pay_with == "card":
        return await start_card_payment(rt, buyer_id, request)
    done, _ = await pay_from_wallet(rt, buyer_id, request)
    return PurchaseView.of(done)


async def wallet_balance(rt: Runtime, user_id: str) -> WalletBalance:
    """`wallet:get`."""
    async with rt.db.connection() as conn:
        wallet = await ledger.get_wallet(conn, user_id)
    return WalletBalance(balance_cents=wallet.balance_cents, currency=wallet.currency)


async def wallet_statement(rt: Runtime, user_id: str) -> WalletView:
    """`GET /wallet`: the balance and the newest entries."""
    async with rt.db.connection() as conn:
        wallet = await ledger.get_wallet(conn, user_id)
        entries = await ledger.account_entries(conn, ledger.wallet_account(user_id), 50)
    return WalletView(balance_cents=wallet.balance_cents, currency=wallet.currency, entries=entries)


async def dev_topup(rt: Runtime, user_id: str, request: TopupRequest) -> WalletBalance:
    """Credit a wallet without Stripe, when `BACKCHANNEL_DEV_TOPUP` allows it."""
    if not rt.settings.dev_topup or rt.settings.env == "production":
        raise NotFound("dev top-ups are disabled (BACKCHANNEL_DEV_TOPUP)")
    async with rt.db.transaction() as conn:
        done = await purchases.insert(
            conn,
            buyer_id=user_id,
            kind="wallet_topup",
            target_id=None,
            creator_id=None,
            amount_cents=request.amount_cents,
            fee_cents=0,
            currency=ledger.WALLET_CURRENCY,
            pay_with="dev",
            status="completed",
        )
        balances = await ledger.post(
            conn,
            sale_legs(ledger.DEV_GRANTS, done, Split(request.amount_cents, 0, 0)),
            currency=ledger.WALLET_CURRENCY,
            memo="dev top-up",
            purchase_id=done.pk,
        )
        assert balances is not None
        fx = Deliveries(conn)
        await sale_effects(rt, fx, done, balances)
    await delivery.finish(rt, fx)
    return WalletBalance(balance_cents=balances[user_id], currency=ledger.WALLET_CURRENCY)
