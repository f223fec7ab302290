"""The only caller of `sio.emit`: everything else asks the emitter to deliver."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import socketio
from pydantic import BaseModel

from backchannel.rooms.names import Namespace, user_room

log = logging.getLogger(__name__)


def _namespaces(namespace: Namespace | None) -> list[str] | None:
    return None if namespace is None else [namespace.value]


def to_wire(data: Any) -> Any:
    """JSON-safe data: msgpack and JSON both need plain types, not datetimes or models."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    return data


class PublishFailed(Exception):
    """An emit or room move reached this node's sockets but could not be published to the
    other nodes (Redis refused, timed out or dropped the connection)."""


class Emitter:
    """Delivers events to users, rooms and sockets, on this node and, through the manager, all.

    A failed publish to other nodes is logged and not raised: what was committed stays
    committed, and the manager owes every socket a `server:resync` once publishing works again.
    `strict()` gives an emitter that raises `PublishFailed` instead, for the outbox, which
    keeps the row and retries it.
    """

    def __init__(self, sio: socketio.AsyncServer, *, strict: bool = False) -> None:
        self._sio = sio
        self._strict = strict

    def strict(self) -> Emitter:
        """This emitter, raising `PublishFailed` when other nodes could not be told."""
        return Emitter(self._sio, strict=True)

    async def _emit(self, event: str, data: Any, **kwargs: Any) -> None:
        try:
            await self._sio.emit(event, data, **kwargs)
        except PublishFailed:
            if self._strict:
                raise

    async def join_user(self, namespaces: Iterable[str], user_id: str, room: str) -> None:
        """Every socket of `user_id` in these namespaces joins `room`, on whichever node."""
        await self._move(list(namespaces), [user_id], room, join=True)

    async def leave_user(self, namespaces: Iterable[str], user_id: str, room: str) -> None:
        """Every socket of `user_id` in these namespaces leaves `room`, on whichever node."""
        await self._move(list(namespaces), [user_id], room, join=False)

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
        await self._emit(
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
            await self._emit(
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
        await self._emit(event, to_wire(data), room=room, namespace=namespace, skip_sid=skip_sid)

    async def to_socket(self, namespace: Namespace, sid: str, event: str, data: Any) -> None:
        """One socket."""
        await self._emit(event, to_wire(data), to=sid, namespace=namespace)

    async def to_local_sockets(self, namespace: Namespace, event: str, data: Any) -> None:
        """Every socket of this node only (shutdown notices), not the whole cluster."""
        await self._sio.emit(event, to_wire(data), namespace=namespace, ignore_queue=True)

    async def join(self, namespace: Namespace, sid: str, room: str) -> None:
        """Put a socket in a room (the socket must be on this node)."""
        await self._sio.enter_room(sid, room, namespace=namespace)

    async def leave(self, namespace: Namespace, sid: str, room: str) -> None:
        """Take a socket out of a room (the socket must be on this node)."""
        await self._sio.leave_room(sid, room, namespace=namespace)

    async def join_user_to_room(self, namespace: Namespace | None, user_id: str, room: str) -> None:
        """Every socket of `user_id`, on whichever node holds it, enters `room`.

        `namespace` None means every namespace. Call it after the commit that grants the
        membership; on this node it takes effect before returning, elsewhere before any emit
        this node makes afterwards. A socket connecting meanwhile is covered too, provided its
        connect hook reads memberships from the database after entering its user room (the
        base namespace enters the user room before `on_authenticated` runs).
        """
        await self.join_users_to_room(namespace, [user_id], room)

    async def join_users_to_room(
        self, namespace: Namespace | None, user_ids: Iterable[str], room: str
    ) -> None:
        """Every socket of each of `user_ids`, on any node, enters `room` (one cluster message)."""
        await self._move(_namespaces(namespace), user_ids, room, join=True)

    async def remove_user_from_room(
        self, namespace: Namespace | None, user_id: str, room: str
    ) -> None:
        """Every socket of `user_id`, on whichever node holds it, leaves `room`."""
        await self.remove_users_from_room(namespace, [user_id], room)

    async def remove_users_from_room(
        self, namespace: Namespace | None, user_ids: Iterable[str], room: str
    ) -> None:
        """Every socket of each of `user_ids`, on any node, leaves `room` (one cluster message)."""
        await self._move(_namespaces(namespace), user_ids, room, join=False)

    async def _move(
        self, namespaces: list[str] | None, user_ids: Iterable[str], room: str, *, join: bool
    ) -> None:
        # One message on the cluster channel that also carries emits (server/cluster.py): a
        # node applies it before any emit this node publishes afterwards.
        sources = [user_room(uid) for uid in user_ids]
        if sources and namespaces != []:
            try:
                await self._sio.manager.move_members(namespaces, sources, room, join=join)
            except PublishFailed:
                if self._strict:
                    raise

    def socket_alive(self, namespace: str, sid: str) -> bool:
        """Whether a socket of this node still has its transport (a socket whose transport
        closed while its connect handler ran is left behind by python-socketio)."""
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, namespace)
        socket = self._sio.eio.sockets.get(eio_sid) if eio_sid is not None else None
        return socket is not None and not (socket.closing or socket.closed)

    async def end_local_room(self, room: str, event: str, data: Any) -> int:
        """Every socket of this node in `room`, in any namespace, gets `event` and is
        disconnected (each node does this for its own sockets); returns how many."""
        manager = self._sio.manager
        ended = 0
        for namespace in list(manager.rooms):
            for sid, _ in list(manager.get_participants(namespace, room)):
                await self._sio.emit(
                    event, to_wire(data), to=sid, namespace=namespace, ignore_queue=True
                )
                await self._sio.disconnect(sid, namespace=namespace, ignore_queue=True)
                ended += 1
        return ended

    async def disconnect(self, namespace: Namespace, sid: str) -> None:
        """Close one socket's namespace connection."""
        await self._sio.disconnect(sid, namespace=namespace)
