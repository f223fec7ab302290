"""How a sale is split between the creator and the platform: integer cents, one rounding rule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """A sale's amount, divided: `fee_cents + creator_cents == amount_cents` always."""

    amount_cents: int
    fee_cents: int
    creator_cents: int


def split_sale(amount_cents: int, fee_percent: int) -> Split:
    """The platform takes `floor(amount * percent / 100)`; the creator gets the rest.

    Rounding down in the creator's favour means a creator never loses a cent to rounding, and
    the two parts always add up to exactly what the fan paid.
    """
    if amount_cents < 0:
        raise ValueError("amount must not be negative")
    if not 0 <= fee_percent <= 100:
        raise ValueError("fee percent must be within 0..100")
    fee = amount_cents * fee_percent // 100
    return Split(amount_cents, fee, amount_cents - fee)


def split_reversal(original: Split, reversed_cents: int) -> Split:
    """The part of a sale a (possibly partial) refund takes back, with the same rounding rule.

    The fee's share of a partial reversal is `floor(fee * reversed / amount)`; a full reversal
    takes back exactly the original fee and creator amounts.
    """
    reversed_cents = min(max(reversed_cents, 0), original.amount_cents)
    if original.amount_cents == 0:
        return Split(0, 0, 0)
    fee = original.fee_cents * reversed_cents // original.amount_cents
    return Split(reversed_cents, fee, reversed_cents - fee)
