"""Room membership that changes while sockets are connected, applied on every node.

A subscription starting or ending changes which rooms a fan's open sockets belong to, and
those sockets may be on any node. The emitter publishes `{op, ns, user, room}` on
`<prefix>:rooms`; this listener, one per node, applies it to the node's own sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)


def membership_channel(prefix: str) -> str:
    """The Redis channel of membership changes."""
    return f"{prefix}:rooms"


async def listen(rt: Runtime, ready: asyncio.Event) -> None:
    """Apply membership changes published by any node, reconnecting when Redis goes away."""
    assert rt.redis is not None
    delay = 0.5
    while True:
        pubsub = rt.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(membership_channel(rt.settings.redis_prefix))
            ready.set()
            delay = 0.5
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    data = json.loads(message["data"])
                    await rt.emitter.apply_membership(
                        str(data["op"]), list(data["ns"]), str(data["user"]), str(data["room"])
                    )
                except Exception:
                    log.exception("bad membership message")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("membership listener lost redis: %s; retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        finally:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except Exception:
                log.debug("pubsub close failed", exc_info=True)


# Namespaces whose sockets sit in `subscribers_room(creator)` while the fan subscribes:
# broadcasts reach /chat, money events /ppv, audience notifications /notifications.
SUBSCRIBER_NAMESPACES: tuple[Namespace, ...] = (
    Namespace.CHAT,
    Namespace.PPV,
    Namespace.NOTIFICATIONS,
)

# The namespaces whose sockets `AuthenticatedNamespace` puts in those rooms on connect
# (/notifications does it in its own connect hook).
JOIN_ON_CONNECT: tuple[Namespace, ...] = (Namespace.CHAT, Namespace.PPV)
