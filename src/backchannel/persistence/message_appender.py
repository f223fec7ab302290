"""Group commit for `message:send`: concurrent sends share one statement and one commit.

Postgres spends far more CPU on a statement and its commit than on the row it inserts (on the
benchmark VM ~250 us for a one-message append, ~60 us a message in a batch of 16), and it
runs on the cores the server needs. So sends are queued here and written by at most
`concurrency` writers: a send that finds a writer free is written at once, alone, with the
one-message statement (no added latency); sends that arrive while every writer is busy wait
for the next free one and go together (`messages.append_messages`). The busier the server,
the bigger the batches; nothing ever waits for a batch to fill.

Each send keeps its own outcome. A batch that fails as a whole for a reason other than the
database being unreachable (a concurrent duplicate from another node, a value Postgres
refuses) is retried one message at a time, so one bad message fails alone. Two sends with
the same (sender, client_id) are never in flight together here: the second waits for the
first to land, then finds it (a retry), as it would one statement at a time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from backchannel.errors import Conflict, Unavailable
from backchannel.persistence import messages
from backchannel.persistence.database import Database
from backchannel.persistence.messages import Appended, NewMessage

log = logging.getLogger(__name__)

# Rows per statement: enough to amortise a commit; small enough to keep one statement short.
MAX_BATCH = 128


@dataclass(slots=True)
class _Send:
    new: NewMessage
    done: asyncio.Future[Appended | None]


class MessageAppender:
    """Appends messages through `messages.append_message(s)`, batching concurrent sends."""

    def __init__(self, db: Database, *, concurrency: int, max_batch: int = MAX_BATCH) -> None:
        """`concurrency`: writers (pooled connections) in use at once, at least 1."""
        self._db = db
        self._concurrency = max(1, concurrency)
        self._max_batch = max(1, max_batch)
        self._queue: list[_Send] = []
        self._writers = 0
        # (sender, client_id) of every send queued or being written -> the sends waiting for it.
        self._in_flight: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # What group commit did (tests read these): statements of several messages, the
        # messages they carried, and batches retried one message at a time.
        self.batches = 0
        self.batched_messages = 0
        self.fallbacks = 0

    async def append(self, new: NewMessage) -> Appended | None:
        """Store `new` as `messages.append_message` would (same result, same errors)."""
        loop = asyncio.get_running_loop()
        key = (new.sender_id, new.client_id)
        while (waiting := self._in_flight.get(key)) is not None:
            # The same client_id is being written: let it land, then this one is a retry.
            landed: asyncio.Future[None] = loop.create_future()
            waiting.append(landed)
            await landed
        self._in_flight[key] = []
        done: asyncio.Future[Appended | None] = loop.create_future()
        self._queue.append(_Send(new, done))
        if self._writers < self._concurrency:
            self._writers += 1
            task = asyncio.create_task(self._write_queue())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Not shielded: a cancelled caller cancels only its future; the write goes on.
        return await done

    async def _write_queue(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._write(batch)
                finally:
                    for send in batch:
                        if not send.done.done():  # only if _write was interrupted
                            send.done.set_exception(Unavailable("the message was not stored"))
                        for landed in self._in_flight.pop((send.new.sender_id, send.new.client_id)):
                            if not landed.done():
                                landed.set_result(None)
        finally:
            self._writers -= 1

    async def _write(self, batch: list[_Send]) -> None:
        try:
            async with self._db.connection() as conn:
                if len(batch) == 1:
                    results = [await messages.append_message(conn, batch[0].new)]
                else:
                    self.batches += 1
                    self.batched_messages += len(batch)
                    results = await messages.append_messages(conn, [s.new for s in batch])
        except Unavailable as exc:
            for send in batch:
                _settle(send, error=Unavailable(exc.message))
            return
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], error=exc)
                return
            self.fallbacks += 1
            if not isinstance(exc, Conflict):
                log.warning("batched append failed; writing one at a time", exc_info=True)
            # One statement per message, so each gets its own outcome.
            await asyncio.gather(*(self._write([send]) for send in batch))
            return
        for send, result in zip(batch, results, strict=True):
            _settle(send, result=result)


def _settle(
    send: _Send, *, result: Appended | None = None, error: BaseException | None = None
) -> None:
    if send.done.done():  # the caller went away
        return
    if error is not None:
        send.done.set_exception(error)
    else:
        send.done.set_result(result)
