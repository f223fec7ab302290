"""Routed cluster traffic: which Redis channel carries a message, and which ones a node hears.

In routed mode every routed room (`rooms.names.ROUTED_KINDS`: user, subscribers and presence
rooms) has a channel of its own, `<prefix>:room:<room>`. A node listens to the channel of every
routed room holding at least one of its sockets, plus two fixed channels: `<prefix>:all`
(emits to a whole namespace, rooms of other kinds, sockets of other nodes) and
`<prefix>:node:<host id>` (answers addressed to this node: ack callbacks, room-move receipts).
A 1:1 message between users held by nodes A and C therefore never reaches node B.

`Subscriptions` keeps the reference counts (one per room membership of a local socket, over
every namespace), batches new channels into one SUBSCRIBE per loop turn, lets callers await
Redis's confirmation (an emit published after it is heard), and unsubscribes a channel only
after it has been unused for a while, so a user who reconnects at once costs no churn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from backchannel.rooms.names import ROUTED_KINDS, room_kind

log = logging.getLogger(__name__)

# One SUBSCRIBE carries at most this many channels (a reconnect resubscribes them all).
_BATCH = 1000

Sender = Callable[[bool, list[str]], Awaitable[None]]


class Channels:
    """Names of the routed-mode channels under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.all = f"{prefix}:all"

    def room(self, room: Any) -> str | None:
        """The channel of a routed room; None for every other room (they go to `all`)."""
        if isinstance(room, str) and room_kind(room) in ROUTED_KINDS:
            return f"{self.prefix}:room:{room}"
        return None

    def node(self, host_id: str) -> str:
        """The channel only the node with this host id hears."""
        return f"{self.prefix}:node:{host_id}"


class Subscriptions:
    """The channels this node listens to, kept in step with its sockets' rooms."""

    def __init__(self, fixed: Iterable[str], *, linger: float) -> None:
        self.fixed = frozenset(fixed)
        self.linger = linger
        self.refs: dict[str, int] = {}
        self.confirmed: set[str] = set()
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._queued: dict[str, None] = {}
        self._idle: dict[str, float] = {}
        self._send: Sender | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_sweep = time.monotonic()
        self.subscribes = 0  # SUBSCRIBE commands sent (metrics and tests read them)
        self.unsubscribes = 0

    @property
    def count(self) -> int:
        """Channels subscribed to now (fixed ones included)."""
        return len(self.confirmed)

    def hold(self, channel: str) -> None:
        """One more local membership needs `channel`."""
        held = self.refs.get(channel, 0)
        self.refs[channel] = held + 1
        if held:
            return
        self._idle.pop(channel, None)
        if channel not in self.confirmed:
            self._want(channel)

    def release(self, channel: str) -> None:
        """One local membership of `channel` has gone."""
        held = self.refs.get(channel, 0) - 1
        if held > 0:
            self.refs[channel] = held
            return
        self.refs.pop(channel, None)
        if channel in self.confirmed or channel in self._pending:
            self._idle[channel] = time.monotonic()

    async def wait(self, channels: Iterable[str], timeout: float) -> None:
        """Return once Redis has confirmed these channels (or the link is down, or `timeout`).

        A down link is not waited for: the node resyncs its sockets when the link returns.
        """
        if self._send is None:
            return
        futures = {f for c in channels if (f := self._pending.get(c)) is not None}
        if futures:
            await asyncio.wait(futures, timeout=timeout)

    def confirm(self, channel: str) -> None:
        """Redis answered our SUBSCRIBE of `channel`."""
        future = self._pending.pop(channel, None)
        if future is None:
            return  # not asked for on this link
        self.confirmed.add(channel)
        if not future.done():
            future.set_result(None)

    async def linked(self, send: Sender) -> None:
        """A fresh link: subscribe everything needed now; later changes go through `send`."""
        self.confirmed.clear()
        self._idle.clear()
        self._queued.clear()
        self._send = send
        for channel in (*self.fixed, *self.refs):
            self._want(channel, queue=False)
        wanted = list(self._pending)
        for start in range(0, len(wanted), _BATCH):
            await send(True, wanted[start : start + _BATCH])
            self.subscribes += 1

    def unlinked(self) -> None:
        """The link is gone: nothing is subscribed; waiters are released."""
        self._send = None
        self.confirmed.clear()
        self._queued.clear()
        for future in self._pending.values():
            if not future.done():
                future.set_result(None)
        self._pending.clear()
        if self._flush_task is not None:
            self._flush_task.cancel()
            self._flush_task = None

    def sweep(self) -> None:
        """Unsubscribe channels unused for `linger` seconds (called by the listener)."""
        now = time.monotonic()
        if now - self._last_sweep < self.linger / 2 or self._send is None:
            return
        self._last_sweep = now
        # A channel whose SUBSCRIBE is still unanswered waits for the next sweep: its late
        # confirmation must not mark a channel we have just left as heard.
        stale = [
            c
            for c, since in self._idle.items()
            if now - since >= self.linger and c in self.confirmed and c not in self._pending
        ]
        if not stale:
            return
        for channel in stale:
            del self._idle[channel]
            self.confirmed.discard(channel)
        self._spawn(self._unsubscribe(stale))

    def _want(self, channel: str, *, queue: bool = True) -> None:
        if channel not in self._pending:
            self._pending[channel] = asyncio.get_running_loop().create_future()
        if queue and self._send is not None:
            self._queued[channel] = None
            if self._flush_task is None:
                self._flush_task = self._spawn(self._flush())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _flush(self) -> None:
        # One loop turn gathers every channel wanted by sockets connecting together.
        await asyncio.sleep(0)
        try:
            while self._queued and self._send is not None:
                batch = list(self._queued)[:_BATCH]
                for channel in batch:
                    del self._queued[channel]
                await self._send(True, batch)
                self.subscribes += 1
        except Exception as exc:
            # The listener notices a broken link and resubscribes everything on the new one.
            log.warning("cluster subscribe failed: %s: %s", exc.__class__.__name__, exc)
        finally:
            self._flush_task = None

    async def _unsubscribe(self, channels: list[str]) -> None:
        send = self._send
        if send is None:
            return
        with contextlib.suppress(Exception):
            for start in range(0, len(channels), _BATCH):
                await send(False, channels[start : start + _BATCH])
                self.unsubscribes += 1
