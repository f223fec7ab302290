"""What a payment buys and what it changes, whichever way it is paid.

`resolve_target` checks what a buyer asks for; `grant`, `sale_legs` and `sale_effects` are the
unlock, the ledger movement and the live events of a sale, shared by wallet payments, card
settlement and dev top-ups so each is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backchannel.domain import notices, webhook_events
from backchannel.domain.chat import get_message_for
from backchannel.domain.delivery import Deliveries
from backchannel.domain.event_models import (
    ContentUnlocked,
    PpvPurchased,
    PpvUnlocked,
    TipReceived,
    checked,
)
from backchannel.domain.fees import Split
from backchannel.domain.payment_models import BuyableKind, PurchaseRequest
from backchannel.errors import Conflict, Forbidden, Invalid, NotFound
from backchannel.persistence import blocks, ledger, unlocks, users
from backchannel.persistence import content as content_store
from backchannel.persistence.database import Connection
from backchannel.persistence.purchases import Purchase
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


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
        if message is None or not message.is_member or message.deleted:
            # A withdrawn paid message is no longer on sale (its buyers keep it).
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
        if await blocks.either_blocks(conn, buyer_id, creator.id):
            raise Forbidden("you cannot tip this creator", {"reason": "blocked"})
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


async def sale_effects(
    rt: Runtime,
    fx: Deliveries,
    purchase: Purchase,
    balances: dict[str, ledger.Wallet],
) -> dict[str, Any] | None:
    """Unlock what was bought and queue the live events; returns the whole message if any."""
    conn = fx.conn
    whole: dict[str, Any] | None = None
    buyer = purchase.buyer_id
    await webhook_events.record_fx(rt, fx, webhook_events.purchase_completed(purchase))
    if purchase.kind == "ppv_message" and purchase.target_id is not None:
        message = await unlocks.message_for_viewer(conn, int(purchase.target_id), buyer)
        assert message is not None
        whole = await message_view(rt, conn, message.id, buyer)
        await fx.to_user(
            Namespace.PPV,
            buyer,
            "ppv:unlocked",
            checked(
                PpvUnlocked,
                {
                    "message_id": message.id,
                    "conversation_id": message.conversation_id,
                    "message": whole,
                },
            ),
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
        await fx.to_user(
            Namespace.PPV, purchase.creator_id, "ppv:purchased", checked(PpvPurchased, event)
        )
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
            Namespace.PPV,
            buyer,
            "content:unlocked",
            checked(ContentUnlocked, {"content_id": purchase.target_id}),
        )
    if purchase.kind == "tip" and purchase.creator_id:
        event = {
            "purchase_id": purchase.id,
            "from_user_id": buyer,
            "amount_cents": purchase.amount_cents,
            "currency": purchase.currency,
        }
        await fx.to_user(
            Namespace.PPV, purchase.creator_id, "tip:received", checked(TipReceived, event)
        )
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
    await tell_balances(fx, balances)
    return whole


async def tell_balances(fx: Deliveries, balances: dict[str, ledger.Wallet]) -> None:
    """Queue `wallet:balance` (with the wallet's version) for each wallet a ledger post moved."""
    for user_id, wallet in balances.items():
        await fx.to_user(Namespace.PPV, user_id, "wallet:balance", wallet.model_dump())
