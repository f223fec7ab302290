"""Storage hygiene: pending uploads nobody completed, and objects no row owns."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from backchannel.domain.media import keys_of
from backchannel.media.store import MediaStore, media_id_of
from backchannel.persistence import media as store
from backchannel.persistence.database import Database

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

BATCH = 200


async def remove_abandoned(rt: Runtime) -> int:
    """Delete pending uploads older than the limit, objects first; returns how many."""
    return await remove_pending(rt.db, rt.media_store, rt.settings.media_pending_max_age_seconds)


async def remove_pending(db: Database, media_store: MediaStore, older_than_seconds: float) -> int:
    """Delete pending uploads created more than `older_than_seconds` ago."""
    removed = 0
    while True:
        async with db.connection() as conn:
            stale = await store.stale_pending(conn, older_than_seconds, BATCH)
        if not stale:
            return removed
        for row in stale:
            await media_store.delete(keys_of(row.id))
            async with db.transaction() as conn:
                await store.delete(conn, row.id)
            removed += 1
        log.info("abandoned uploads removed", extra={"count": len(stale)})


@dataclass
class GcReport:
    """What `backchannel media gc` looked at and did."""

    scanned: int = 0
    removed: list[str] = field(default_factory=list)
    pending_removed: int = 0


async def collect_garbage(
    db: Database, media_store: MediaStore, pending_max_age_seconds: float, grace_seconds: float
) -> GcReport:
    """Remove every object no live row owns (older than the grace period, so an upload that
    is arriving right now is never taken), after removing abandoned pending uploads."""
    report = GcReport()
    report.pending_removed = await remove_pending(db, media_store, pending_max_age_seconds)
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_seconds)
    batch: list[tuple[str, int | None]] = []

    async def sweep() -> None:
        ids = sorted({media_id for _, media_id in batch if media_id is not None})
        async with db.connection() as conn:
            live = await store.existing_ids(conn, ids)
        orphans = [key for key, media_id in batch if media_id is None or media_id not in live]
        if orphans:
            await media_store.delete(orphans)
            report.removed.extend(orphans)
        batch.clear()

    async for key, modified in media_store.objects():
        report.scanned += 1
        if modified > cutoff:
            continue
        batch.append((key, media_id_of(key)))
        if len(batch) >= BATCH:
            await sweep()
    if batch:
        await sweep()
    return report
