"""The one call site where money events become user notifications.

The notifications feature stores and delivers notifications. Until it is on this branch this
only logs, and the live `/ppv` events (`ppv:purchased`, `tip:received`,
`subscription:started`) are what the creator hears. Wiring it in: store with
`notifications.notify_in(conn, [user_id], type_, title, data=data, dedupe_key=...)` inside the
caller's transaction and append `staged.deliver` to `fx.after_commit`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from backchannel.persistence.database import Connection

if TYPE_CHECKING:
    from backchannel.domain.delivery import Deliveries

log = logging.getLogger(__name__)


async def notify(
    conn: Connection,
    fx: Deliveries,
    user_id: str,
    type_: str,
    title: str,
    data: dict[str, Any],
) -> None:
    """Tell `user_id` about `type_` (`subscription.started`, `ppv.purchased`, `tip.received`)."""
    del conn, fx
    log.debug("notification %s for %s: %s %s", type_, user_id, title, data)
