"""What the money features say on the wire: amounts, purchase requests, and their results."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from backchannel.persistence.ledger import LedgerEntry
from backchannel.persistence.purchases import Purchase

MAX_AMOUNT_CENTS = 1_000_000
# Stripe's smallest charge in most currencies is 50 cents.
MIN_CARD_CENTS = 50

Cents = Annotated[int, Field(ge=1, le=MAX_AMOUNT_CENTS)]
BuyableKind = Literal["ppv_message", "content", "tip", "wallet_topup"]


class PurchaseRequest(BaseModel):
    """`POST /purchases`."""

    # The document says what `sales` enforces: a tip or a top-up names its amount.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"kind": {"enum": ["ppv_message", "content"]}}},
                {
                    "required": ["amount_cents"],
                    "properties": {
                        "kind": {"enum": ["tip", "wallet_topup"]},
                        "amount_cents": {"type": "integer"},
                    },
                },
            ]
        },
    )
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
    version: int = Field(description="grows by one with every change of this wallet")
    entries: list[LedgerEntry]


class WalletBalance(BaseModel):
    """`wallet:get` and the `wallet:balance` event: keep the highest `version` seen."""

    balance_cents: int
    currency: str
    version: int = Field(description="grows by one with every change of this wallet")
