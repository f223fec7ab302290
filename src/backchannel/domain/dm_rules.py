"""Who may message whom directly: a creator's `dm_policy`, fan-to-fan DMs, paid DMs.

The rule reads a few facts of the two people (`persistence.dm_policies.DirectFacts`) and says
allowed, allowed at a price, or why not. A paid DM is charged in the transaction that stores
the message, with the ledger postings of a tip (the fan's wallet, the creator's earnings, the
platform fee), so the message exists exactly when the payment does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from backchannel.domain import delivery, webhook_events
from backchannel.domain.delivery import Deliveries
from backchannel.domain.fees import split_sale
from backchannel.domain.payment_models import MIN_CARD_CENTS
from backchannel.errors import Forbidden, PaymentRequired
from backchannel.persistence import dm_policies, ledger, messages, purchases
from backchannel.persistence.database import Connection
from backchannel.persistence.dm_policies import DirectFacts, DmPolicy
from backchannel.persistence.messages import Appended, NewMessage
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

Policy = Literal["everyone", "subscribers", "paid", "nobody"]
STAFF = frozenset({"moderator", "admin"})


@dataclass(frozen=True)
class DmCharge:
    """What one message to a `paid` creator costs its sender."""

    creator_id: str
    amount_cents: int
    currency: str = ledger.WALLET_CURRENCY


def policy_of(role: str, stored: DmPolicy | None, default: str) -> DmPolicy | None:
    """The rule in force for a user: creators have one (stored, else the default); others none."""
    if role != "creator":
        return None
    return stored or DmPolicy(default, None)


def decide(
    sender_role: str, facts: DirectFacts, *, default_policy: str, fan_to_fan: bool
) -> DmCharge | None:
    """Whether `sender` may message `facts.recipient_id` directly, and at what price.

    Raises `forbidden` (`details.reason`: `dm_policy`, `fan_to_fan_dms`) or `payment_required`
    (`details.reason`: `subscribers_only`, with how to subscribe).
    """
    if sender_role in STAFF or facts.recipient_role in STAFF:
        return None
    if sender_role == "creator" and facts.recipient_role != "creator":
        return None  # a creator may always reach fans (their subscribers and buyers above all)
    if facts.recipient_role != "creator":
        if fan_to_fan:
            return None
        raise Forbidden("fans cannot message other fans directly", {"reason": "fan_to_fan_dms"})
    policy = policy_of(facts.recipient_role, facts.stored_policy, default_policy)
    assert policy is not None
    if policy.dm_policy == "everyone":
        return None
    if policy.dm_policy == "nobody":
        raise Forbidden(
            f"{facts.recipient_name} does not take direct messages",
            {"reason": "dm_policy", "dm_policy": "nobody"},
        )
    if policy.dm_policy == "subscribers":
        if facts.subscribed:
            return None
        raise PaymentRequired(
            f"only subscribers of {facts.recipient_name} may message them",
            {
                "reason": "subscribers_only",
                "dm_policy": "subscribers",
                "creator_id": facts.recipient_id,
                "subscribe": {
                    "method": "POST",
                    "path": f"/api/v1/creators/{facts.recipient_id}/subscription",
                },
            },
        )
    price = policy.dm_price_cents or 0
    return DmCharge(creator_id=facts.recipient_id, amount_cents=price) if price > 0 else None


async def check_open(
    rt: Runtime, conn: Connection, sender_id: str, sender_role: str, other: str
) -> None:
    """`conversation:open` of a DM: refused when a message into it would be (a price is paid
    per message, not to open)."""
    facts = await dm_policies.facts_for_user(conn, sender_id, other)
    if facts is not None:
        decide(
            sender_role,
            facts,
            default_policy=rt.settings.creator_dm_policy_default,
            fan_to_fan=rt.settings.fan_to_fan_dms,
        )


# How long a node trusts "this sender may message into this DM for free" (a lapsed
# subscription or a changed policy applies within this); a group never has a rule.
ALLOWED_TTL_SECONDS = 2.0
_MAX_VERDICTS = 100_000


async def check_send(
    rt: Runtime, sender_id: str, sender_role: str, conversation_id: int
) -> DmCharge | None:
    """`message:send`: the rule of a direct conversation (groups have none).

    A free verdict is remembered per node (groups for good, DMs for `ALLOWED_TTL_SECONDS`), so
    the common send makes no extra round trip; refusals and prices are read every time.
    """
    key = (conversation_id, sender_id)
    now = time.monotonic()
    until = rt.dm_verdicts.get(key)
    if until is not None and now < until:
        return None
    async with rt.db.connection() as conn:
        kind, facts = await dm_policies.facts_for_conversation(conn, sender_id, conversation_id)
    if kind is None:
        return None  # no such conversation: the append says so
    charge = None
    if facts is not None:
        charge = decide(
            sender_role,
            facts,
            default_policy=rt.settings.creator_dm_policy_default,
            fan_to_fan=rt.settings.fan_to_fan_dms,
        )
    if charge is None:
        if len(rt.dm_verdicts) >= _MAX_VERDICTS:
            rt.dm_verdicts.clear()
        rt.dm_verdicts[key] = math.inf if kind == "group" else now + ALLOWED_TTL_SECONDS
    return charge


def _short(charge: DmCharge, balance_cents: int) -> PaymentRequired:
    details: dict[str, Any] = {
        "reason": "dm_price",
        "price_cents": charge.amount_cents,
        "currency": charge.currency,
        "balance_cents": balance_cents,
        "wallet_topup": {
            "method": "POST",
            "path": "/api/v1/purchases",
            "body": {
                "kind": "wallet_topup",
                "amount_cents": max(charge.amount_cents - balance_cents, MIN_CARD_CENTS),
                "pay_with": "card",
            },
        },
    }
    return PaymentRequired(
        f"a message costs {charge.amount_cents} cents; your wallet holds {balance_cents}",
        details,
    )


async def append_paid(rt: Runtime, new: NewMessage, charge: DmCharge) -> Appended | None:
    """Store the message and charge its sender, in one transaction (None: not appended, as
    `messages.append_message` says, and nothing charged)."""
    split = split_sale(charge.amount_cents, rt.settings.platform_fee_percent)
    async with rt.db.transaction() as conn:
        appended = await messages.append_message(conn, new)
        if appended is None:
            return None
        purchase = await purchases.insert(
            conn,
            buyer_id=new.sender_id,
            kind="tip",
            target_id=charge.creator_id,
            creator_id=charge.creator_id,
            amount_cents=split.amount_cents,
            fee_cents=split.fee_cents,
            currency=charge.currency,
            pay_with="wallet",
            status="completed",
        )
        moved = await ledger.post(
            conn,
            # A tip's legs (`sales.sale_legs`): the fan's wallet pays the creator and the fee.
            [
                (ledger.wallet_account(new.sender_id), -split.amount_cents),
                (ledger.earnings_account(charge.creator_id), split.creator_cents),
                (ledger.PLATFORM_FEE, split.fee_cents),
            ],
            currency=charge.currency,
            memo=f"dm {appended[0].id}",
            purchase_id=purchase.pk,
        )
        if moved is None:
            wallet = await ledger.get_wallet(conn, new.sender_id)
            raise _short(charge, wallet.balance_cents)  # rolls the message back with it
        fx = Deliveries(conn)
        for user_id, wallet in moved.wallets.items():
            await fx.to_user(Namespace.PPV, user_id, "wallet:balance", wallet.model_dump())
        await webhook_events.record_fx(
            rt,
            fx,
            [
                webhook_events.message_created(appended[0]),
                *webhook_events.purchase_completed(purchase),
            ],
        )
    await delivery.finish(rt, fx)
    return appended
