"""The wallet API for other backends: credit or debit a user's wallet with a server API key.

The counter-account is per key (`grants:<key name>`), so what each backend granted or took is
one query. An idempotency key is scoped to the API key: a repeat answers the first result and
writes nothing; the same key with a different body is a `conflict`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from backchannel.domain import delivery
from backchannel.domain.delivery import Deliveries
from backchannel.domain.payment_models import MAX_AMOUNT_CENTS, WalletBalance
from backchannel.domain.sales import tell_balances
from backchannel.errors import Conflict, NotFound, PaymentRequired
from backchannel.persistence import ledger, users, wallet_grants
from backchannel.persistence.wallet_grants import Direction, WalletGrant

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime


class WalletChange(BaseModel):
    """`POST /server/wallets/{user_id}/credits` and `/debits`."""

    model_config = ConfigDict(extra="forbid", strict=True)
    amount_cents: Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT_CENTS)]
    currency: Literal["usd"] = "usd"
    # Postgres text cannot hold NUL: refuse it here rather than fail at the database.
    reason: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


class WalletChangeResult(BaseModel):
    """What a credit or debit did (the first time; repeats answer the same)."""

    entry_id: str
    balance_cents: int
    version: int


async def change(
    rt: Runtime, key_name: str, user_id: str, direction: Direction, request: WalletChange
) -> WalletChangeResult:
    """Credit or debit once per idempotency key; a debit never overdraws."""
    async with rt.db.transaction() as conn:
        if not await users.user_exists(conn, user_id):
            raise NotFound("no such user")
        earlier = await wallet_grants.lock_and_get(conn, key_name, request.idempotency_key)
        if earlier is not None:
            asked = (user_id, direction, request.amount_cents, request.currency, request.reason)
            first = (
                earlier.user_id,
                earlier.direction,
                earlier.amount_cents,
                earlier.currency,
                earlier.reason,
            )
            if asked != first:
                raise Conflict(
                    "this idempotency_key was used with a different request",
                    {"idempotency_key": request.idempotency_key},
                )
            return WalletChangeResult(
                entry_id=str(earlier.entry_id),
                balance_cents=earlier.balance_cents,
                version=earlier.version,
            )
        wallet = ledger.wallet_account(user_id)
        sign = 1 if direction == "credit" else -1
        moved = await ledger.post(
            conn,
            [
                (ledger.grants_account(key_name), -sign * request.amount_cents),
                (wallet, sign * request.amount_cents),
            ],
            currency=request.currency,
            memo=f"{key_name}: {request.reason}",
        )
        if moved is None:
            balance = (await ledger.get_wallet(conn, user_id)).balance_cents
            raise PaymentRequired(
                f"the wallet holds {balance} cents; cannot debit {request.amount_cents}",
                {"balance_cents": balance, "amount_cents": request.amount_cents},
            )
        state = moved.wallets[user_id]
        await wallet_grants.insert(
            conn,
            WalletGrant(
                key_name=key_name,
                idempotency_key=request.idempotency_key,
                user_id=user_id,
                direction=direction,
                amount_cents=request.amount_cents,
                currency=request.currency,
                reason=request.reason,
                entry_id=moved.entry_ids[wallet],
                balance_cents=state.balance_cents,
                version=state.version,
            ),
        )
        fx = Deliveries(conn)
        await tell_balances(fx, moved.wallets)
    await delivery.finish(rt, fx)
    return WalletChangeResult(
        entry_id=str(moved.entry_ids[wallet]),
        balance_cents=state.balance_cents,
        version=state.version,
    )


async def balance(rt: Runtime, user_id: str) -> WalletBalance:
    """`GET /server/wallets/{user_id}`."""
    async with rt.db.connection() as conn:
        if not await users.user_exists(conn, user_id):
            raise NotFound("no such user")
        wallet = await ledger.get_wallet(conn, user_id)
    return WalletBalance.model_validate(wallet.model_dump())
