"""The chaos test's clients: chat users who keep a copy of their conversations the way a real
app does, stay connected to whichever node answers, and resend until acked.

A `Chatter` holds every message it has seen, keyed by conversation and seq. It learns of
messages from its own acks, from `message:new` (live or replayed on connect with
`auth.last_seq`) and from `messages:sync`, which it runs from its *contiguous* watermark (the
highest seq below which it holds everything) after every (re)connect and every
`server:resync`. Two different messages at one seq, or a message of a conversation it is not
in, are recorded as inconsistencies, never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import socketio

from tests.support import User

ACK_TIMEOUT = 3.0
CONNECT_TIMEOUT = 3.0
# Error codes after which the same client_id is sent again: the send may not have been stored
# (`unavailable`), or the server could not say (`internal`, a timeout); `rate_limited` after
# its delay. Any other code is the test's own mistake and stops that chatter.
RETRIED = {"unavailable", "internal", "commit outcome unknown", "rate_limited"}


@dataclass(frozen=True)
class Planned:
    """One message a chatter means to send: where, with which client_id, at what offset."""

    conversation_id: str
    client_id: str
    at: float


@dataclass
class Outcome:
    """What became of one planned send."""

    planned: Planned
    ack: dict[str, Any] | None = None
    attempts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # (monotonic time, error code or "timeout"/"disconnected") of every failed attempt
    failures: list[tuple[float, str]] = field(default_factory=list)
    acked_at: float | None = None

    def failed(self, code: str) -> None:
        """Count one failed attempt."""
        self.errors[code] += 1
        self.failures.append((time.monotonic(), code))


def contiguous(held: dict[int, dict[str, Any]]) -> int:
    """The highest seq n such that seqs 1..n are all held."""
    for n in itertools.count(1):
        if n not in held:
            return n - 1
    raise AssertionError("unreachable")


class Chatter:
    """One user with one `/chat` socket that moves between nodes when one goes away."""

    def __init__(
        self, name: str, user: User, urls: list[str], home: int, conversations: list[str]
    ) -> None:
        self.name = name
        self.user = user
        self.urls = urls
        # The node the load balancer sends this client to while it is up; `at`: where it is.
        self.home = home
        self.at: int | None = None
        self.conversations = conversations
        self.held: dict[str, dict[int, dict[str, Any]]] = {c: {} for c in conversations}
        self.inconsistencies: list[str] = []
        self.outcomes: list[Outcome] = []
        self.connects = 0
        self.resyncs = 0
        # how each held message was first learned of: ack, message:new, sync
        self.learned: Counter[str] = Counter()
        self.fatal: list[str] = []
        self._client: socketio.AsyncClient | None = None
        self._connected = asyncio.Event()
        self._dropped = asyncio.Event()
        self._move = False
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- what it holds --------------------------------------------------------------------

    def merge(self, message: dict[str, Any], *, via: str) -> None:
        """Keep one message; two different ones at a seq are an inconsistency."""
        conversation_id = str(message["conversation_id"])
        if conversation_id not in self.held:
            self.inconsistencies.append(f"{self.name} got {via} of a foreign conversation")
            return
        seq = int(message["seq"])
        known = self.held[conversation_id].get(seq)
        if known is None:
            self.learned[via] += 1
            self.held[conversation_id][seq] = message
        elif str(known["id"]) != str(message["id"]):
            self.inconsistencies.append(
                f"{self.name}: conversation {conversation_id} seq {seq} is message "
                f"{known['id']} and, {via}, message {message['id']}"
            )

    @property
    def client(self) -> socketio.AsyncClient | None:
        """The connected client, if any."""
        return self._client if self._connected.is_set() else None

    def watermarks(self) -> dict[str, int]:
        """`auth.last_seq`: the contiguous watermark of every conversation."""
        return {c: contiguous(h) for c, h in self.held.items()}

    # -- staying connected ----------------------------------------------------------------

    def start(self) -> None:
        """Connect (in the background, for as long as the chatter lives)."""
        self._spawn(self._stay_connected())

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until a socket is connected and caught up; False after `timeout`."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Disconnect and stop every task."""
        self._closing = True
        self._dropped.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.disconnect()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def rebalance(self) -> bool:
        """Drop the connection if it is away from home (a phone changing networks); the
        reconnect goes home first. Whether it dropped."""
        if self.at is None or self.at == self.home or not self._connected.is_set():
            return False
        self._dropped.set()
        return True

    async def _stay_connected(self) -> None:
        leaving: int | None = None
        while not self._closing:
            order = [self.home] + [i for i in range(len(self.urls)) if i != self.home]
            if leaving is not None:
                # Told to leave (server:shutdown): that node last.
                order = [i for i in order if i != leaving] + [leaving]
            for index in order:
                client = await self._connect(self.urls[index])
                if client is not None:
                    self.at = index
                    break
            else:
                await asyncio.sleep(0.2)
                continue
            await self._dropped.wait()
            self._connected.clear()
            self._client = None
            with contextlib.suppress(Exception):
                await client.disconnect()
            leaving = self.at if self._move else None
            self._move = False
            self.at = None

    async def _connect(self, url: str) -> socketio.AsyncClient | None:
        client = socketio.AsyncClient(reconnection=False)
        self._dropped.clear()

        async def on_new(data: Any = None) -> None:
            if isinstance(data, dict):
                self.merge(data, via="message:new")

        async def on_resync(data: Any = None) -> None:
            self.resyncs += 1
            self._spawn(self._catch_up(client))

        async def on_shutdown(data: Any = None) -> None:
            self._move = True
            self._dropped.set()

        async def on_disconnect(*args: Any) -> None:
            self._dropped.set()

        client.on("message:new", on_new, namespace="/chat")
        client.on("server:resync", on_resync, namespace="/chat")
        client.on("server:shutdown", on_shutdown, namespace="/chat")
        client.on("disconnect", on_disconnect, namespace="/chat")
        try:
            await client.connect(
                url,
                namespaces=["/chat"],
                auth={"token": self.user.access_token, "last_seq": self.watermarks()},
                transports=["websocket"],
                wait_timeout=CONNECT_TIMEOUT,
            )
        except Exception:
            with contextlib.suppress(Exception):
                await client.disconnect()
            return None
        self.connects += 1
        self._client = client
        if not await self._catch_up(client):
            self._dropped.set()
            return client
        self._connected.set()
        return client

    async def _catch_up(self, client: socketio.AsyncClient) -> bool:
        """`messages:sync` every conversation from its watermark; False if the socket failed."""
        for conversation_id in self.conversations:
            if not await self.sync(client, conversation_id):
                return False
        return True

    async def sync(self, client: socketio.AsyncClient, conversation_id: str) -> bool:
        """Sync one conversation from its watermark to the end; False if it did not finish."""
        while True:
            after = contiguous(self.held[conversation_id])
            try:
                ack = await client.call(
                    "messages:sync",
                    {"conversation_id": conversation_id, "after_seq": after, "limit": 200},
                    namespace="/chat",
                    timeout=ACK_TIMEOUT,
                )
            except socketio.exceptions.SocketIOError:
                return False
            if not ack.get("ok"):
                return False
            for message in ack["data"]["items"]:
                self.merge(message, via="sync")
            if not ack["data"]["has_more"]:
                return True
            if contiguous(self.held[conversation_id]) == after:
                # A page that does not move the watermark: syncing again would loop forever.
                self.inconsistencies.append(
                    f"{self.name}: sync of {conversation_id} after {after} left a gap"
                )
                return True

    # -- sending --------------------------------------------------------------------------

    async def send_all(
        self, plan: list[Planned], started: float, give_up_at: float, price: int | None = None
    ) -> None:
        """Send every planned message in order, at its offset from `started` (or later),
        each resent with its client_id until acked or `give_up_at` (a monotonic time)."""
        for planned in plan:
            delay = started + planned.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            outcome = Outcome(planned)
            self.outcomes.append(outcome)
            await self._send_until_acked(outcome, give_up_at, price)
            if self.fatal:
                return

    async def _send_until_acked(
        self, outcome: Outcome, give_up_at: float, price: int | None
    ) -> None:
        payload: dict[str, Any] = {
            "conversation_id": outcome.planned.conversation_id,
            "client_id": outcome.planned.client_id,
            "body": f"{self.name} says {outcome.planned.client_id}",
        }
        if price is not None:
            payload["price_cents"] = price
        while time.monotonic() < give_up_at:
            left = give_up_at - time.monotonic()
            if not await self.wait_connected(min(left, CONNECT_TIMEOUT)):
                continue
            client = self._client
            if client is None:
                continue
            outcome.attempts += 1
            try:
                ack = await client.call(
                    "message:send", payload, namespace="/chat", timeout=ACK_TIMEOUT
                )
            except socketio.exceptions.TimeoutError:
                outcome.failed("timeout")
                continue
            except socketio.exceptions.SocketIOError:
                outcome.failed("disconnected")
                await asyncio.sleep(0.1)
                continue
            if ack.get("ok"):
                outcome.ack = ack["data"]
                outcome.acked_at = time.monotonic()
                self.merge(ack["data"], via="ack")
                return
            code = str(ack.get("error", {}).get("code"))
            if code == "internal" and "may be stored" in str(ack["error"].get("message")):
                # The connection broke during COMMIT: the outcome is unknown, and the same
                # client_id's retry finds out (it answers the stored message, or stores it).
                code = "commit outcome unknown"
            outcome.failed(code)
            if code not in RETRIED:
                self.fatal.append(f"{self.name}: {payload['client_id']} answered {ack}")
                return
            retry_after = ack["error"].get("details", {}).get("retry_after_ms", 100)
            await asyncio.sleep(
                min(float(retry_after) / 1000, 1.0) if code == "rate_limited" else 0.2
            )
