"""Namespaces and room names: one scheme, `<kind>:<id>`, built only here."""

from __future__ import annotations

from enum import StrEnum


class Namespace(StrEnum):
    """The Socket.IO namespaces Backchannel serves; every other namespace is refused."""

    CHAT = "/chat"
    TYPING = "/typing"
    PRESENCE = "/presence"
    PPV = "/ppv"
    NOTIFICATIONS = "/notifications"


def user_room(user_id: str) -> str:
    """Every socket of one user, within a namespace."""
    return f"user:{user_id}"


def subscribers_room(creator_id: str) -> str:
    """Sockets of a creator's active subscribers."""
    return f"subscribers:{creator_id}"


def presence_room(user_id: str) -> str:
    """Sockets that watch one user's presence."""
    return f"presence:{user_id}"


def session_room(session_id: str) -> str:
    """Every socket opened with a token of one login session, within a namespace."""
    return f"session:{session_id}"


# Kinds of room whose emits and moves travel on a Redis channel of their own when the cluster
# routes traffic (server/cluster_routes.py). Session rooms are only ever emptied on the node
# that holds them, so they stay off Redis; any other room goes to every node.
ROUTED_KINDS = frozenset({"user", "subscribers", "presence"})


def room_kind(room: str) -> str | None:
    """`"user"` for `"user:<id>"`; None for a socket's own (sid) room or any name without one."""
    kind, separator, _ = room.partition(":")
    return kind if separator else None
