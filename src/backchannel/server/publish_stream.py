"""The Redis stream intake: `XADD <prefix>:publish * payload <json>` does what `/publish` does.

Every node reads the stream through one consumer group (one per cluster), under its own
consumer name. An entry is acknowledged only after its notification has committed; an entry
left pending by a node that died is taken over (`XAUTOCLAIM`) once it has been idle for
`publish_stream_claim_idle_seconds`. Each entry publishes with its `dedupe_key` (or, lacking
one, its entry id), so an entry handled twice, by a slow node and by the one that reclaimed
it, is stored and delivered once. A malformed entry, or one that has failed
`publish_stream_max_deliveries` times, moves to `<prefix>:publish:dead` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from redis.exceptions import ResponseError

from backchannel import inputs
from backchannel.domain import api_keys, notifications
from backchannel.domain.notification_models import PublishRequest
from backchannel.errors import Invalid, Unavailable, validation_details
from backchannel.outage_log import report
from backchannel.server.redis_clients import is_cluster

if TYPE_CHECKING:
    from backchannel.server.redis_clients import RedisClient
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

GROUP = "backchannel"
STREAM_PUBLISHER = "stream"
# A consumer with nothing pending that has not read for this long belonged to a node now gone.
_FORGET_CONSUMER_AFTER_MS = 3_600_000

Entry = tuple[str, dict[bytes, bytes] | None]


class Poison(Exception):
    """An entry that can never succeed: it goes to the dead-letter stream, with this reason."""


def stream_key(prefix: str) -> str:
    """The intake stream."""
    return f"{prefix}:publish"


def dead_key(prefix: str) -> str:
    """Where malformed entries go, with the reason."""
    return f"{prefix}:publish:dead"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PublishStreamConsumer:
    """One node's consumer of the publish stream."""

    def __init__(self, rt: Runtime, redis: RedisClient, name: str) -> None:
        settings = rt.settings
        self.rt = rt
        self.redis = redis
        self.name = name
        self.stream = stream_key(settings.redis_prefix)
        self.dead = dead_key(settings.redis_prefix)
        self.batch = settings.publish_stream_batch
        self.claim_idle_ms = max(1, int(settings.publish_stream_claim_idle_seconds * 1000))
        self.block_ms = max(50, min(1000, self.claim_idle_ms // 2))
        self.max_deliveries = settings.publish_stream_max_deliveries
        self.trusted = settings.publish_stream_trusted
        self._last_claim = 0.0
        self._stopping = asyncio.Event()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stop`; a Redis or database outage only pauses it."""
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                await self.ensure_group()
                while not self._stopping.is_set():
                    await self.step()
                    backoff = 0.2
            except Exception as exc:
                report(log, "publish stream consumer (paused)", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, 5.0)

    def stop(self) -> None:
        """Finish the current read (at most one block interval) and return from `run`.

        Cancelling a blocked XREADGROUP instead would drop its connection mid-reply.
        """
        self._stopping.set()

    async def step(self) -> int:
        """Reclaim stale entries when due, then read and handle one batch of new ones."""
        handled = 0
        now = time.monotonic()
        if now - self._last_claim >= self.claim_idle_ms / 2000:
            self._last_claim = now
            handled += await self.handle_all(await self.claim_stale(), reclaimed=True)
            await self.housekeep()
        handled += await self.handle_all(await self.read_new())
        return handled

    async def ensure_group(self) -> None:
        """Create the cluster's consumer group (from the stream's start) unless it exists."""
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_new(self, block: bool = True) -> list[Entry]:
        """Entries never delivered to any consumer of the group, now pending on this one."""
        response: Any = await self.redis.xreadgroup(
            GROUP,
            self.name,
            {self.stream: ">"},
            count=self.batch,
            block=self.block_ms if block else None,
        )
        entries: list[Entry] = []
        for _stream, items in response or []:
            entries.extend((_text(entry_id), fields) for entry_id, fields in items)
        return entries

    async def claim_stale(self) -> list[Entry]:
        """Take over entries pending on any consumer (a dead node's) for too long."""
        claimed: list[Entry] = []
        cursor = "0-0"
        for _ in range(10):  # bounded: at most ten batches per round
            response: Any = await self.redis.xautoclaim(
                self.stream,
                GROUP,
                self.name,
                min_idle_time=self.claim_idle_ms,
                start_id=cursor,
                count=self.batch,
            )
            cursor = _text(response[0])
            claimed.extend((_text(entry_id), fields) for entry_id, fields in response[1] or [])
            if cursor == "0-0":
                break
        return claimed

    async def handle_all(self, entries: list[Entry], *, reclaimed: bool = False) -> int:
        """Handle entries in stream order; returns how many were settled (acked)."""
        if not entries:
            return 0
        deliveries: dict[str, int] = {}
        if reclaimed:
            pending = await self.redis.xpending_range(
                self.stream,
                GROUP,
                min=entries[0][0],
                max=entries[-1][0],
                count=len(entries) * 2,
                consumername=self.name,
            )
            deliveries = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        settled = 0
        for entry_id, fields in entries:
            if await self.handle(entry_id, fields, deliveries.get(entry_id, 1)):
                settled += 1
        return settled

    async def handle(
        self, entry_id: str, fields: dict[bytes, bytes] | None, delivered: int
    ) -> bool:
        """Publish one entry and acknowledge it; False when it stays pending for a retry."""
        if fields is None:  # trimmed while pending: nothing left to do
            await self.redis.xack(self.stream, GROUP, entry_id)
            return True
        try:
            if delivered > self.max_deliveries:
                raise Poison(f"gave up after {delivered - 1} failed deliveries")
            await self.apply(entry_id, fields)
        except Poison as poison:
            self.rt.metrics.stream_entries.labels("dead").inc()
            await self.dead_letter(entry_id, fields, str(poison))
            return True
        except Unavailable as exc:
            log.warning("stream entry %s not published yet: %s", entry_id, exc.message)
            self.rt.metrics.stream_entries.labels("retry").inc()
            return False
        except Exception:
            log.exception("stream entry %s failed; it will be retried", entry_id)
            self.rt.metrics.stream_entries.labels("retry").inc()
            return False
        # Counted before the acknowledgement: whoever sees the entry settled sees it counted.
        self.rt.metrics.stream_entries.labels("published").inc()
        await self.redis.xack(self.stream, GROUP, entry_id)
        return True

    async def apply(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        """Publish one entry (not acknowledged here); `Poison` if it can never succeed."""
        publisher, request = await self.parse(fields)
        if request.dedupe_key is None:
            # The entry id stands in, so an entry handled twice still publishes once.
            request = request.model_copy(update={"dedupe_key": f"stream:{entry_id}"})
        try:
            await notifications.publish(self.rt, publisher, request)
        except Invalid as exc:
            raise Poison(_reason(exc)) from None

    async def parse(self, fields: dict[bytes, bytes]) -> tuple[str, PublishRequest]:
        """The publisher an entry acts as and its `/publish` body; `Poison` if malformed."""
        raw = fields.get(b"payload")
        if raw is None:
            raise Poison("entry has no `payload` field")
        try:
            data = inputs.loads(raw)  # bounded depth, storable text, 64-bit integers
        except Invalid as exc:
            raise Poison(_reason(exc)) from None
        if not isinstance(data, dict):
            raise Poison("payload must be a JSON object")
        key_name = data.pop("api_key_name", None)
        if key_name is None:
            if not self.trusted:
                raise Poison("payload names no api_key_name (trusted stream mode is off)")
            publisher = STREAM_PUBLISHER
        else:
            key = await api_keys.key_by_name(self.rt.db, str(key_name))
            if key is None:
                raise Poison(f"api key {key_name!r} is unknown or revoked")
            publisher = key.name
        try:
            request = PublishRequest.model_validate(data)
            request.check_target()
        except ValidationError as exc:
            raise Poison(
                "invalid payload: " + json.dumps(validation_details(exc.errors()))
            ) from None
        except Invalid as exc:
            raise Poison(_reason(exc)) from None
        return publisher, request

    async def dead_letter(self, entry_id: str, fields: dict[bytes, bytes], reason: str) -> None:
        """Move an entry to the dead-letter stream with the reason, and acknowledge it."""
        log.warning("stream entry %s dead-lettered: %s", entry_id, reason)
        # One transaction on a single Redis; on a cluster the two streams sit in different
        # slots, so the entry is copied first and acknowledged after (a crash between the two
        # dead-letters it twice, never loses it).
        async with self.redis.pipeline(transaction=not is_cluster(self.redis)) as pipe:
            pipe.xadd(
                self.dead,
                {
                    "entry_id": entry_id,
                    "payload": fields.get(b"payload", b""),
                    "reason": reason,
                    "consumer": self.name,
                },
                maxlen=100_000,
                approximate=True,
            )
            pipe.xack(self.stream, GROUP, entry_id)
            await pipe.execute()

    async def housekeep(self) -> None:
        """Trim what every consumer has acknowledged; forget consumers of nodes long gone."""
        with contextlib.suppress(ResponseError):
            summary = await self.redis.xpending(self.stream, GROUP)
            groups = await self.redis.xinfo_groups(self.stream)
            ours = next((g for g in groups if _text(g["name"]) == GROUP), None)
            if ours is not None and len(groups) == 1:
                oldest = summary.get("min") if summary.get("pending") else None
                keep_from = _text(oldest or ours["last-delivered-id"])
                await self.redis.xtrim(self.stream, minid=keep_from, approximate=True)
            for consumer in await self.redis.xinfo_consumers(self.stream, GROUP):
                name = _text(consumer["name"])
                if (
                    name != self.name
                    and int(consumer["pending"]) == 0
                    and int(consumer["idle"]) > _FORGET_CONSUMER_AFTER_MS
                ):
                    await self.redis.xgroup_delconsumer(self.stream, GROUP, name)


def _reason(exc: Invalid) -> str:
    if exc.details:
        return f"{exc.message}: {json.dumps(exc.details)}"
    return exc.message
