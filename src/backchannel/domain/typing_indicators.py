"""Typing indicators: throttled starts that expire by themselves; nothing is stored.

State lives in this node's memory, keyed by (conversation, user). A start is broadcast at
most once per throttle interval; starts in between only push the expiry back, without a
database round trip (membership was checked when the broadcast went out). A stop, an expiry or
the typing socket's disconnect broadcasts `typing: false`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backchannel.domain.chat import member_conversation, parse_id
from backchannel.rooms.membership import others
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class _Typing:
    sid: str
    member_ids: list[str]
    last_broadcast: float
    deadline: float
    task: asyncio.Task[None] | None = None


class TypingIndicators:
    """Who is typing where, on this node, with their expiry timers."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._active: dict[tuple[int, str], _Typing] = {}

    @property
    def _timeout(self) -> float:
        return self.rt.settings.typing_timeout_seconds

    @property
    def _throttle(self) -> float:
        return self.rt.settings.typing_throttle_seconds

    async def _members(self, conversation_id: int, user_id: str) -> list[str]:
        async with self.rt.db.connection() as conn:
            row = await member_conversation(conn, conversation_id, user_id)
        return row.participant_ids

    def _refresh_if_throttled(self, key: tuple[int, str], sid: str) -> bool:
        state = self._active.get(key)
        now = time.monotonic()
        if state is None or now - state.last_broadcast >= self._throttle:
            return False
        state.deadline = now + self._timeout
        state.sid = sid
        return True

    async def start(self, user_id: str, sid: str, conversation_id_text: str) -> None:
        """`typing:start`: broadcast (throttled) and (re)arm the expiry."""
        conversation_id = parse_id(conversation_id_text)
        key = (conversation_id, user_id)
        if self._refresh_if_throttled(key, sid):
            return
        member_ids = await self._members(conversation_id, user_id)
        # Re-checked after the await: a concurrent start may have broadcast meanwhile.
        if self._refresh_if_throttled(key, sid):
            return
        now = time.monotonic()
        state = self._active.get(key)
        if state is None:
            state = _Typing(sid, member_ids, now, now + self._timeout)
            state.task = asyncio.create_task(self._expire(key, state))
            self._active[key] = state
        else:
            state.sid, state.member_ids = sid, member_ids
            state.last_broadcast, state.deadline = now, now + self._timeout
        await self._broadcast(conversation_id, user_id, member_ids, typing=True)

    async def stop(self, user_id: str, sid: str, conversation_id_text: str) -> None:
        """`typing:stop`: broadcast that the user stopped."""
        conversation_id = parse_id(conversation_id_text)
        state = self._active.pop((conversation_id, user_id), None)
        if state is not None:
            self._cancel(state)
            member_ids = state.member_ids
        else:
            # Maybe started on another node; still only members may say so.
            member_ids = await self._members(conversation_id, user_id)
        await self._broadcast(conversation_id, user_id, member_ids, typing=False)

    async def socket_gone(self, sid: str) -> None:
        """A socket disconnected: whatever it was typing stops."""
        gone = [key for key, state in self._active.items() if state.sid == sid]
        for key in gone:
            state = self._active.pop(key)
            self._cancel(state)
            await self._broadcast(key[0], key[1], state.member_ids, typing=False)

    async def close(self) -> None:
        """Cancel every expiry timer (shutdown)."""
        states = list(self._active.values())
        self._active.clear()
        for state in states:
            self._cancel(state)
        tasks = [s.task for s in states if s.task is not None]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @staticmethod
    def _cancel(state: _Typing) -> None:
        if state.task is not None and state.task is not asyncio.current_task():
            state.task.cancel()

    async def _expire(self, key: tuple[int, str], state: _Typing) -> None:
        # Starts push the deadline back without waking this task; it sleeps until the latest.
        while (wait := state.deadline - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        if self._active.get(key) is state:
            del self._active[key]
            try:
                await self._broadcast(key[0], key[1], state.member_ids, typing=False)
            except Exception:
                log.exception("typing expiry broadcast failed")

    async def _broadcast(
        self, conversation_id: int, user_id: str, member_ids: list[str], *, typing: bool
    ) -> None:
        event = {"conversation_id": str(conversation_id), "user_id": user_id, "typing": typing}
        recipients = others(member_ids, user_id)
        # Typing of someone a member blocks never reaches that member (a cached lookup).
        blockers = await self.rt.blocks.blockers(user_id, recipients)
        await self.rt.emitter.to_users(
            Namespace.TYPING, [uid for uid in recipients if uid not in blockers], "typing", event
        )
