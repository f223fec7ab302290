"""Which namespaces' sockets sit in a creator's subscriber room.

A subscription starting or ending changes which rooms a fan's open sockets belong to, and
those sockets may be on any node: `Emitter.join_user` / `leave_user` move them wherever they
are (through the cluster manager, in order with emits; see server/cluster.py).
"""

from __future__ import annotations

from backchannel.rooms.names import Namespace

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
