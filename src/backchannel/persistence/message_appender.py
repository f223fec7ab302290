"""Group commit for `message:send`: concurrent sends share one statement and one commit.

Postgres spends far more CPU on a statement and its commit than on the row it inserts (on the
benchmark VM ~250 us for a one-message append, ~60 us a message in a batch of 16), and it
runs on the cores the server needs. So sends are queued here and written by at most
`concurrency` writers: a send that finds a writer free is written at once, alone (no added
latency); sends that arrive while every writer is busy wait for the next free one and go
together in one statement. The busier the server, the bigger the batches; nothing ever waits
for a batch to fill.

A writer never waits for a row lock: its statements skip a conversation that another send or
a paid broadcast (which locks thousands of conversations for most of a second) holds, and
each message they skip is written alone with the ordinary, waiting statement, outside the
writers. So a locked conversation delays only its own messages, never a batch. Those lone
writes wait for the lock on a pooled connection each, so they take turns: at most
`alone_limit` at once (a share of the pool), the others queued for at most `alone_wait`
seconds and then answered `unavailable` (not stored). Replies flooding a creator's
conversations during a paid broadcast never take every connection of the node.

Each send keeps its own outcome. A batch that fails as a whole for a reason other than the
database being unreachable (a concurrent duplicate from another node, a value Postgres
refuses) is retried one message at a time, so one bad message fails alone. Two sends with
the same (sender, client_id) are never in flight together here: the second waits for the
first to land, then finds it (a retry), as it would one statement at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from backchannel.errors import Conflict, Unavailable
from backchannel.persistence import messages
from backchannel.persistence.database import Connection, Database
from backchannel.persistence.messages import BUSY, Appended, NewMessage, TryAppended

log = logging.getLogger(__name__)

# Rows per statement: enough to amortise a commit; small enough to keep one statement short.
MAX_BATCH = 128
# Batch writers per node. One is enough to keep Postgres busy and makes the biggest batches;
# a second keeps sends moving while one statement is slow (its commit waits on a busy disk).
MESSAGE_WRITERS = 2


class AppendHook(Protocol):
    """What else must be written with appended messages (webhook events), when anything."""

    def wanted(self) -> bool:
        """Whether `record_appended` must run; False keeps a send one bare statement."""
        ...

    async def record_appended(self, conn: Connection, appended: Sequence[Appended]) -> None:
        """Write, in the appending transaction, what these messages imply."""
        ...

    def appended_committed(self) -> None:
        """That transaction committed."""
        ...


@dataclass(slots=True)
class _Send:
    new: NewMessage
    done: asyncio.Future[Appended | None]
    settled: bool = False
    alone: bool = False  # handed to a write of its own


class MessageAppender:
    """Appends messages as `messages.append_message` does, batching concurrent sends."""

    def __init__(
        self,
        db: Database,
        *,
        concurrency: int,
        max_batch: int = MAX_BATCH,
        alone_limit: int | None = None,
        alone_wait: float | None = None,
    ) -> None:
        """`concurrency`: batch writers (pooled connections) in use at once, at least 1;
        `alone_limit`: lone writes (waiting on a locked conversation) in use at once, unbounded
        when None; `alone_wait`: the longest a lone write waits for its turn."""
        self._db = db
        self._concurrency = max(1, concurrency)
        self._max_batch = max(1, max_batch)
        self._alone = asyncio.Semaphore(max(1, alone_limit)) if alone_limit is not None else None
        self._alone_wait = alone_wait
        self._alone_now = 0
        self.alone_peak = 0  # the most lone writes that held a connection at once
        self._queue: list[_Send] = []
        self._writers = 0
        # (sender, client_id) of every send queued or being written -> the sends waiting for it.
        self._in_flight: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Set once at start-up (webhooks): consulted per statement, so a send nobody
        # subscribes to stays one statement in its own implicit transaction.
        self.hook: AppendHook | None = None
        # What group commit did (tests read these): statements of several messages, the
        # messages they carried, batches retried one message at a time, and messages written
        # alone because their conversation was locked.
        self.batches = 0
        self.batched_messages = 0
        self.fallbacks = 0
        self.busy = 0

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
            self._spawn(self._write_queue())
        # Not shielded: a cancelled caller cancels only its future; the write goes on.
        return await done

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_queue(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._write(batch)
                finally:
                    for send in batch:
                        if not send.settled and not send.alone:  # the write was interrupted
                            self._settle(send, error=Unavailable("the message was not stored"))
        finally:
            self._writers -= 1

    async def _write(self, batch: list[_Send]) -> None:
        results: list[TryAppended]
        hook = self.hook if self.hook is not None and self.hook.wanted() else None
        try:
            async with self._db.connection() as conn, AsyncExitStack() as tx:
                if hook is not None:
                    await tx.enter_async_context(conn.transaction())
                if len(batch) == 1:
                    results = [await messages.try_append_message(conn, batch[0].new)]
                else:
                    self.batches += 1
                    self.batched_messages += len(batch)
                    results = await messages.try_append_messages(conn, [s.new for s in batch])
                if hook is not None:
                    await hook.record_appended(conn, [r for r in results if _is_appended(r)])
            if hook is not None:
                hook.appended_committed()
        except Unavailable as exc:
            for send in batch:
                self._settle(send, error=Unavailable(exc.message))
            return
        except Exception as exc:
            # One statement per message, so each gets its own outcome.
            if len(batch) > 1:
                self.fallbacks += 1
                if not isinstance(exc, Conflict):
                    log.warning("batched append failed; writing one at a time", exc_info=True)
            for send in batch:
                send.alone = True
                self._spawn(self._write_alone(send))
            return
        for send, result in zip(batch, results, strict=True):
            if result is BUSY:
                self.busy += 1
                send.alone = True
                self._spawn(self._write_alone(send))
            else:
                self._settle(send, result=result)

    @asynccontextmanager
    async def _alone_turn(self) -> AsyncIterator[None]:
        """A turn among the lone writes: at most `alone_limit` hold a connection at once."""
        if self._alone is not None:
            try:
                async with asyncio.timeout(self._alone_wait):
                    await self._alone.acquire()
            except TimeoutError:
                raise Unavailable("the message was not stored") from None
        self._alone_now += 1
        self.alone_peak = max(self.alone_peak, self._alone_now)
        try:
            yield
        finally:
            self._alone_now -= 1
            if self._alone is not None:
                self._alone.release()

    async def _write_alone(self, send: _Send) -> None:
        """The ordinary statement, which waits for the conversation's lock if it must."""
        hook = self.hook if self.hook is not None and self.hook.wanted() else None
        try:
            async with self._alone_turn(), self._db.connection() as conn, AsyncExitStack() as tx:
                if hook is not None:
                    await tx.enter_async_context(conn.transaction())
                result = await messages.append_message(conn, send.new)
                if hook is not None and result is not None:
                    await hook.record_appended(conn, [result])
            if hook is not None and result is not None:
                hook.appended_committed()
        except Exception as exc:
            self._settle(send, error=exc)
        except BaseException:
            self._settle(send, error=Unavailable("the message was not stored"))
            raise
        else:
            self._settle(send, result=result)

    def _settle(
        self, send: _Send, *, result: Appended | None = None, error: BaseException | None = None
    ) -> None:
        """Answer the send (unless its caller went away) and wake sends of its client_id."""
        send.settled = True
        if not send.done.done():
            if error is not None:
                send.done.set_exception(error)
            else:
                send.done.set_result(result)
        for landed in self._in_flight.pop((send.new.sender_id, send.new.client_id), ()):
            if not landed.done():
                landed.set_result(None)


def _is_appended(result: TryAppended) -> TypeGuard[Appended]:
    return result is not None and result is not BUSY
