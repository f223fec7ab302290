"""Wallets: a balance, its statement, and the dev-only top-up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backchannel.domain import delivery
from backchannel.domain.delivery import Deliveries
from backchannel.domain.fees import Split
from backchannel.domain.payment_models import TopupRequest, WalletBalance, WalletView
from backchannel.domain.sales import sale_effects, sale_legs
from backchannel.errors import NotFound
from backchannel.persistence import ledger, purchases

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


async def wallet_balance(rt: Runtime, user_id: str) -> WalletBalance:
    """`wallet:get`."""
    async with rt.db.connection() as conn:
        wallet = await ledger.get_wallet(conn, user_id)
    return WalletBalance.model_validate(wallet.model_dump())


async def wallet_statement(rt: Runtime, user_id: str) -> WalletView:
    """`GET /wallet`: the balance and the newest entries."""
    async with rt.db.connection() as conn:
        wallet = await ledger.get_wallet(conn, user_id)
        entries = await ledger.account_entries(conn, ledger.wallet_account(user_id), 50)
    return WalletView(
        balance_cents=wallet.balance_cents,
        currency=wallet.currency,
        version=wallet.version,
        entries=entries,
    )


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
        moved = await ledger.post(
            conn,
            sale_legs(ledger.DEV_GRANTS, done, Split(request.amount_cents, 0, 0)),
            currency=ledger.WALLET_CURRENCY,
            memo="dev top-up",
            purchase_id=done.pk,
        )
        assert moved is not None
        fx = Deliveries(conn)
        await sale_effects(rt, fx, done, moved.wallets)
    await delivery.finish(rt, fx)
    return WalletBalance.model_validate(moved.wallets[user_id].model_dump())
