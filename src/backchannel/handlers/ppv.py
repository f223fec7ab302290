"""The `/ppv` namespace: pay-per-view unlocks, broadcasts, and the wallet."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from backchannel.domain import broadcasts, payments, wallets
from backchannel.domain.chat_views import Message
from backchannel.domain.event_models import (
    ContentLocked,
    ContentUnlocked,
    PpvLocked,
    PpvPurchased,
    PpvUnlocked,
    PurchaseUpdated,
    SubscriptionEnded,
    SubscriptionStarted,
    TipReceived,
)
from backchannel.domain.payment_models import UnlockRequest, WalletBalance
from backchannel.domain.subscriptions import SubscriptionView
from backchannel.handlers.base import AuthenticatedNamespace, EventContext, event
from backchannel.rooms.names import Namespace


class WalletGet(BaseModel):
    """`wallet:get` takes nothing."""

    model_config = ConfigDict(extra="forbid")


class PpvNamespace(AuthenticatedNamespace):
    """Pay-per-view unlocks, broadcasts, and the wallet."""

    path = Namespace.PPV
    server_events = {
        "ppv:unlocked": PpvUnlocked,
        "ppv:locked": PpvLocked,
        "ppv:purchased": PpvPurchased,
        "ppv:purchase_updated": PurchaseUpdated,
        "content:unlocked": ContentUnlocked,
        "content:locked": ContentLocked,
        "tip:received": TipReceived,
        "wallet:balance": WalletBalance,
        "subscription:started": SubscriptionStarted,
        "subscription:ended": SubscriptionEnded,
        "subscription:updated": SubscriptionView,
    }

    @event("ppv:unlock", UnlockRequest, ack=Message)
    async def unlock(self, ctx: EventContext, payload: UnlockRequest) -> Any:
        """Pay from the wallet; the ack carries the whole message."""
        return await payments.unlock_message(self.rt, ctx.user_id, payload)

    @event("ppv:broadcast", broadcasts.BroadcastRequest)
    async def broadcast(
        self, ctx: EventContext, payload: broadcasts.BroadcastRequest
    ) -> broadcasts.BroadcastResult:
        """A paid message to every active subscriber."""
        return await broadcasts.ppv_broadcast(self.rt, ctx.user_id, ctx.role, payload)

    @event("wallet:get", WalletGet)
    async def wallet(self, ctx: EventContext, payload: WalletGet) -> WalletBalance:
        """`{balance_cents, currency, version}`."""
        return await wallets.wallet_balance(self.rt, ctx.user_id)
