"""The only caller of `sio.emit`: everything else asks the emitter to deliver."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import socketio
from pydantic import BaseModel

from backchannel.rooms.names import Namespace, user_room

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


def to_wire(data: Any) -> Any:
    """JSON-safe data: msgpack and JSON both need plain types, not datetimes or models."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    return data


class Emitter:
    """Delivers events to users, rooms and sockets, on this node and, through the manager, all."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio
        self._redis: Redis | None = None
        self.membership_channel = ""

    def use_cluster_membership(self, redis: Redis | None, channel: str) -> None:
        """Send room-membership changes of users through Redis, so every node applies them."""
        self._redis = redis
        self.membership_channel = channel

    async def join_user(self, namespaces: Iterable[str], user_id: str, room: str) -> None:
        """Every socket of `user_id` in these namespaces joins `room`, on whichever node."""
        await self._membership("join", list(namespaces), user_id, room)

    async def leave_user(self, namespaces: Iterable[str], user_id: str, room: str) -> None:
        """Every socket of `user_id` in these namespaces leaves `room`, on whichever node."""
        await self._membership("leave", list(namespaces), user_id, room)

    async def _membership(self, op: str, namespaces: list[str], user_id: str, room: str) -> None:
        if self._redis is None:
            await self.apply_membership(op, namespaces, user_id, room)
            return
        # Socket ids are only known to the node holding them: every node acts on its own.
        message = json.dumps({"op": op, "ns": namespaces, "user": user_id, "room": room})
        await self._redis.publish(self.membership_channel, message)

    async def apply_membership(
        self, op: str, namespaces: list[str], user_id: str, room: str
    ) -> None:
        """Join or leave `room` for this node's sockets of `user_id`."""
        for namespace in namespaces:
            sids = [
                sid for sid, _ in self._sio.manager.get_participants(namespace, user_room(user_id))
            ]
            for sid in sids:
                if op == "join":
                    await self._sio.enter_room(sid, room, namespace=namespace)
                else:
                    await self._sio.leave_room(sid, room, namespace=namespace)

    async def to_user(
        self,
        namespace: Namespace,
        user_id: str,
        event: str,
        data: Any,
        *,
        skip_sid: str | None = None,
    ) -> None:
        """Every socket of `user_id` in `namespace`, on any node."""
        await self._sio.emit(
            event, to_wire(data), room=user_room(user_id), namespace=namespace, skip_sid=skip_sid
        )

    async def to_users(
        self,
        namespace: Namespace,
        user_ids: Iterable[str],
        event: str,
        data: Any,
        *,
        skip_sid: str | None = None,
    ) -> None:
        """Every socket of each user, as one emit: a socket in several rooms gets it once."""
        rooms = [user_room(uid) for uid in user_ids]
        if rooms:
            await self._sio.emit(
                event, to_wire(data), room=rooms, namespace=namespace, skip_sid=skip_sid
            )

    async def to_room(
        self,
        namespace: Namespace,
        room: str,
        event: str,
        data: Any,
        *,
        skip_sid: str | None = None,
    ) -> None:
        """Every socket in a room, on any node."""
        await self._sio.emit(
            event, to_wire(data), room=room, namespace=namespace, skip_sid=skip_sid
        )

    async def to_socket(self, namespace: Namespace, sid: str, event: str, data: Any) -> None:
        """One socket."""
        await self._sio.emit(event, to_wire(data), to=sid, namespace=namespace)

    async def to_local_sockets(self, namespace: Namespace, event: str, data: Any) -> None:
        """Every socket of this node only (shutdown notices), not the whole cluster."""
        await self._sio.emit(event, to_wire(data), namespace=namespace, ignore_queue=True)

    async def join(self, namespace: Namespace, sid: str, room: str) -> None:
        """Put a socket in a room (the socket must be on this node)."""
        await self._sio.enter_room(sid, room, namespace=namespace)

    async def leave(self, namespace: Namespace, sid: str, room: str) -> None:
        """Take a socket out of a room (the socket must be on this node)."""
        await self._sio.leave_room(sid, room, namespace=namespace)

    def socket_alive(self, namespace: str, sid: str) -> bool:
        """Whether a socket of this node still has its transport (a socket whose transport
        closed while its connect handler ran is left behind by python-socketio)."""
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, namespace)
        return eio_sid is not None and eio_sid in self._sio.eio.sockets

    async def disconnect(self, namespace: Namespace, sid: str) -> None:
        """Close one socket's namespace connection."""
        await self._sio.disconnect(sid, namespace=namespace)
