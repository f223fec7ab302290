"""The one call site where money events become stored notifications.

Each is stored by the notifications feature inside the caller's transaction (so it exists
exactly when the payment does) and pushed live after commit; a user who was offline reads it
from `notifications:sync`. The live `/ppv` events (`ppv:purchased`, `tip:received`,
`subscription:started`) are sent as well, for clients that only watch `/ppv`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from backchannel.domain import notifications, webhook_events
from backchannel.persistence.database import Connection

if TYPE_CHECKING:
    from backchannel.domain.delivery import Deliveries


async def notify(
    conn: Connection,
    fx: Deliveries,
    user_id: str,
    type_: str,
    title: str,
    data: dict[str, Any],
    *,
    body: str | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Tell `user_id` about `type_` (`subscription.started`, `ppv.purchased`, `tip.received`)."""
    staged = await notifications.notify_in(
        conn, [user_id], type_, title, body, to_jsonable_python(data), dedupe_key=dedupe_key
    )
    fx.after_commit.append(staged.deliver)
    fx.after_commit.append(webhook_events.wake_step)  # its `notification.created`, if any


def money(amount_cents: int, currency: str) -> str:
    """`12.50 USD`, from integer cents (display only)."""
    return f"{amount_cents // 100}.{amount_cents % 100:02d} {currency.upper()}"
