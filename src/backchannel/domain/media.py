"""Uploads, their completion and processing, entitlement-checked renderings, and deletion.

Bytes never pass through an API handler's memory: S3 clients PUT to a presigned URL; local
clients PUT to Backchannel's signed upload route, which streams to disk. Completion reads the
stored object, checks its real type, and processes it in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from backchannel.domain.media_views import MediaView, render_item, snapshot
from backchannel.errors import Conflict, Forbidden, Invalid, NotFound, PaymentRequired, TooLarge
from backchannel.media.processing import Processed, Rejected, WrongType, process
from backchannel.media.sniff import ALLOWED, kind_of
from backchannel.media.store import LocalStore, MediaStore, TooBig, media_key
from backchannel.persistence import media as store
from backchannel.persistence.database import Connection
from backchannel.persistence.media import MediaRow
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)

ALL_VARIANTS = ("full", "thumbnail", "preview", "poster")


class UploadRequest(BaseModel):
    """`POST /media`."""

    model_config = ConfigDict(extra="forbid")
    content_type: Annotated[str, StringConstraints(strict=True, to_lower=True, max_length=100)]
    size_bytes: Annotated[StrictInt, Field(ge=1, le=2**53)]
    filename: (
        Annotated[str, StringConstraints(strict=True, max_length=255, pattern=r"^[^\x00]*$")] | None
    ) = None


class UploadTarget(BaseModel):
    """Where and how to send the bytes."""

    method: str
    url: str
    headers: dict[str, str]


class UploadTicket(BaseModel):
    """`POST /media`'s answer: a pending item and its short-lived signed upload target."""

    media_id: str
    status: str
    upload: UploadTarget
    expires_at: datetime


class MediaStatus(BaseModel):
    """`POST /media/{id}/complete`'s answer and `media:ready`'s payload."""

    media_id: str
    status: str
    kind: str | None
    content_type: str | None
    size_bytes: int | None
    width: int | None
    height: int | None
    duration_s: float | None
    blurhash: str | None
    failure: str | None = None
    retired: bool = False

    @classmethod
    def of(cls, row: MediaRow) -> MediaStatus:
        """The status of a stored item."""
        return cls(
            media_id=str(row.id),
            status=row.status,
            kind=row.kind,
            content_type=row.content_type,
            size_bytes=row.size_bytes,
            width=row.width,
            height=row.height,
            duration_s=row.duration_s,
            blurhash=row.blurhash,
            failure=row.failure,
            retired=row.retired_at is not None,
        )


class MediaRef(BaseModel):
    """`{media_id}`: one of the sender's own ready uploads, in a message or content."""

    model_config = ConfigDict(extra="forbid")
    media_id: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=20)]


def pick_media(external: type[BaseModel]) -> Callable[[Any], BaseModel]:
    """A validator for one attachment: a `{media_id}` ref, or else an `external` item whose
    errors name that model's own fields (`media.0.url`), not the members of a union."""

    def pick(value: Any) -> BaseModel:
        if isinstance(value, dict) and "media_id" in value:
            return MediaRef.model_validate(value)
        if isinstance(value, MediaRef | external):
            return value
        return external.model_validate(value)

    return pick


def parse_media_id(raw: str) -> int:
    """A media id from its wire form; anything else is simply not found."""
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("no such media")
    return int(raw)


def keys_of(media_id: int) -> list[str]:
    """Every storage key an item may have."""
    return [media_key(media_id, variant) for variant in ALL_VARIANTS]


async def create_upload(rt: Runtime, user_id: str, request: UploadRequest) -> UploadTicket:
    """A pending item and a signed target to upload its bytes to."""
    if kind_of(request.content_type) is None:
        raise Invalid(
            f"{request.content_type} is not an allowed media type",
            [{"field": "content_type", "message": f"one of: {', '.join(ALLOWED)}"}],
        )
    limit = rt.settings.media_max_bytes
    if request.size_bytes > limit:
        raise TooLarge(f"media may be at most {limit} bytes", {"max_bytes": limit})
    ttl = rt.settings.media_upload_ttl_seconds
    async with rt.db.transaction() as conn:
        row = await store.insert_pending(
            conn, user_id, request.content_type, request.size_bytes, request.filename, ttl
        )
    key = media_key(row.id, "full")
    headers = {"Content-Type": request.content_type}
    direct = await rt.media_store.presigned_put(key, request.content_type, ttl)
    # Local store: Backchannel's own signed PUT, which streams to disk.
    url = direct or rt.media_links.link(str(row.id), "upload", user_id, ttl).url
    return UploadTicket(
        media_id=str(row.id),
        status=row.status,
        upload=UploadTarget(method="PUT", url=url, headers=headers),
        expires_at=row.upload_expires_at,
    )


async def receive_upload(
    rt: Runtime,
    raw_id: str,
    link: tuple[str, str, str],
    content_length: int | None,
    chunks: AsyncIterator[bytes],
) -> int:
    """The local store's signed PUT: stream the body to disk, never past the declared size."""
    exp, viewer, sig = link
    if not rt.media_links.check(raw_id, "upload", viewer, exp, sig):
        raise Forbidden("this upload link is expired or invalid")
    local = rt.media_store
    if not isinstance(local, LocalStore):
        raise NotFound("uploads go to the storage service directly")
    media_id = parse_media_id(raw_id)
    async with rt.db.connection() as conn:
        row = await store.get(conn, media_id)
    if row is None or row.owner_id != viewer:
        raise NotFound("no such media")
    if row.status != "pending":
        raise Conflict("this media is no longer waiting for an upload")
    limit = min(row.declared_size, rt.settings.media_max_bytes)
    if content_length is not None and content_length > limit:
        raise TooLarge(f"this upload was declared as {row.declared_size} bytes")
    try:
        return await local.receive(media_key(media_id, "full"), chunks, limit)
    except TooBig:
        raise TooLarge(f"this upload was declared as {row.declared_size} bytes") from None


async def complete(rt: Runtime, user_id: str, raw_id: str) -> MediaStatus:
    """Check the uploaded bytes' real type, process them, and tell the owner's devices."""
    media_id = parse_media_id(raw_id)
    async with rt.db.connection() as conn:
        row = await store.get(conn, media_id)
    if row is None or row.owner_id != user_id:
        raise NotFound("no such media")
    if row.status == "ready":
        return MediaStatus.of(row)
    if row.status == "failed":
        raise Invalid(row.failure or "this media failed processing", [_field(row.failure)])
    media_store = rt.media_store
    key = media_key(media_id, "full")
    size = await media_store.size(key)
    if size is None:
        raise Conflict("nothing has been uploaded for this media yet")
    if size > min(row.declared_size, rt.settings.media_max_bytes):
        await _fail(rt, row, "the upload is larger than declared", delete=True)
        raise TooLarge(f"the upload is larger than the declared {row.declared_size} bytes")
    workdir_root = rt.settings.data_dir / "tmp"
    workdir_root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=workdir_root) as workdir:
            async with media_store.local_copy(key) as path:
                if path is None:
                    raise Conflict("nothing has been uploaded for this media yet")
                result = await asyncio.to_thread(process, path, row.declared_type, Path(workdir))
            await _store_variants(media_store, media_id, result)
    except WrongType as exc:
        await _fail(rt, row, str(exc), delete=True)
        raise Invalid(str(exc), [_field(str(exc))]) from None
    except Rejected as exc:
        failed = await _fail(rt, row, str(exc), delete=True)
        return failed
    async with rt.db.transaction() as conn:
        ready = await store.mark_ready(
            conn,
            media_id,
            content_type=result.content_type,
            kind=result.kind,
            size_bytes=result.size_bytes,
            width=result.width,
            height=result.height,
            duration_s=result.duration_s,
            blurhash=result.blurhash,
            variants=sorted(v for v in result.files if v != "full"),
        )
    if ready is None:
        async with rt.db.connection() as conn:
            again = await store.get(conn, media_id)
        if again is None:
            raise NotFound("no such media")
        return MediaStatus.of(again)
    status = MediaStatus.of(ready)
    await _announce(rt, user_id, status)
    return status


def _field(message: str | None) -> dict[str, str]:
    return {"field": "content", "message": message or "invalid media"}


async def _store_variants(media_store: MediaStore, media_id: int, result: Processed) -> None:
    for variant, path in result.files.items():
        content_type = result.content_type if variant == "full" else "image/jpeg"
        await media_store.put_file(media_key(media_id, variant), path, content_type)


async def _fail(rt: Runtime, row: MediaRow, failure: str, *, delete: bool) -> MediaStatus:
    if delete:
        await rt.media_store.delete(keys_of(row.id))
    async with rt.db.transaction() as conn:
        failed = await store.mark_failed(conn, row.id, failure)
    status = MediaStatus.of(failed or row)
    if failed is not None:
        await _announce(rt, row.owner_id, status)
    return status


async def _announce(rt: Runtime, user_id: str, status: MediaStatus) -> None:
    try:
        await rt.emitter.to_user(Namespace.NOTIFICATIONS, user_id, "media:ready", status)
    except Exception:
        log.warning("live delivery of media:ready failed", exc_info=True)


async def attach(conn: Connection, owner_id: str, refs: list[MediaRef]) -> list[dict[str, Any]]:
    """Snapshots of the owner's own ready, unretired items; anything else is `not_found`."""
    if not refs:
        return []
    ids = [parse_media_id(ref.media_id) for ref in refs]
    rows = await store.get_many(conn, ids)
    items = []
    for media_id in ids:
        row = rows.get(media_id)
        if row is None or row.owner_id != owner_id or row.status != "ready":
            raise NotFound(
                f"no such media: {media_id}", [{"field": "media", "message": str(media_id)}]
            )
        if row.retired_at is not None:
            raise Conflict(f"media {media_id} is retired and cannot be sent again")
        items.append(snapshot(row))
    return items


async def attach_media(
    rt: Runtime, owner_id: str, items: Sequence[BaseModel], *, paid: bool
) -> list[dict[str, Any]]:
    """What a message or content stores of its media, in the order given.

    `{media_id}` refs become snapshots of the owner's ready uploads; other items are external
    `{url, type}` attachments, which cannot be protected and so never go behind a price.
    """
    refs = [item for item in items if isinstance(item, MediaRef)]
    external = [item for item in items if not isinstance(item, MediaRef)]
    if external and paid:
        raise Invalid(
            "paid messages and content may only hold uploaded media ({media_id})",
            [{"field": "media", "message": "external URLs cannot be protected"}],
        )
    if not refs:
        return [_external(item) for item in items]
    async with rt.db.connection() as conn:
        snapshots = iter(await attach(conn, owner_id, refs))
    return [next(snapshots) if isinstance(item, MediaRef) else _external(item) for item in items]


def _external(item: BaseModel) -> dict[str, Any]:
    data = item.model_dump(mode="json")
    return {"url": str(data["url"]), "type": data["type"]}


async def rendering(rt: Runtime, viewer_id: str, raw_id: str) -> MediaView:
    """Fresh links for an entitled viewer; `payment_required` with the way in, or `forbidden`."""
    media_id = parse_media_id(raw_id)
    async with rt.db.connection() as conn:
        row = await store.get(conn, media_id)
        if row is None or row.status != "ready":
            raise NotFound("no such media")
        if row.owner_id == viewer_id:
            return render_item(snapshot(row), viewer_id, rt.media_links)
        used_in = await store.message_uses(conn, media_id, viewer_id)
        content = await store.content_uses(conn, media_id, viewer_id)
    if any(use.price_cents is None or use.unlocked for use in used_in) or any(
        c.visibility == "public"
        or (c.visibility == "subscribers" and c.subscribed)
        or (c.visibility == "ppv" and c.unlocked)
        for c in content
    ):
        return render_item(snapshot(row), viewer_id, rt.media_links)
    if used_in:
        cheapest = min(used_in, key=lambda use: use.price_cents or 0)
        raise PaymentRequired(
            "unlock a message holding this media to see it",
            {
                "price_cents": cheapest.price_cents,
                "currency": cheapest.currency,
                "pay_with": ["wallet", "card"],
                "unlock": {"event": "ppv:unlock", "message_id": str(cheapest.message_id)},
                "purchase": {
                    "method": "POST",
                    "path": "/api/v1/purchases",
                    "body": {
                        "kind": "ppv_message",
                        "target_id": str(cheapest.message_id),
                        "pay_with": "wallet",
                    },
                },
            },
        )
    for c in content:
        if c.visibility == "ppv":
            raise PaymentRequired(
                "buy the content holding this media to see it",
                {
                    "price_cents": c.price_cents,
                    "currency": c.currency,
                    "pay_with": ["wallet", "card"],
                    "purchase": {
                        "method": "POST",
                        "path": "/api/v1/purchases",
                        "body": {"kind": "content", "target_id": str(c.content_id)},
                    },
                },
            )
        if c.visibility == "subscribers":
            raise PaymentRequired(
                "subscribe to this creator to see this media",
                {
                    "pay_with": ["subscription"],
                    "subscribe": {
                        "method": "POST",
                        "path": f"/api/v1/creators/{c.creator_id}/subscription",
                    },
                },
            )
    raise Forbidden("this media was not shared with you")


@dataclass(frozen=True)
class Delivery:
    """What `GET /media/{id}/{variant}` answers: a local file, or a redirect to storage."""

    content_type: str
    max_age: int
    path: Path | None = None
    redirect: str | None = None


async def deliver(
    rt: Runtime,
    raw_id: str,
    variant: str,
    link: tuple[str, str, str],
    requester_id: str | None,
) -> Delivery:
    """Check a signed link (and, when the request names a user, that it is theirs)."""
    exp, viewer, sig = link
    left = rt.media_links.check(raw_id, variant, viewer, exp, sig)
    if variant not in ALL_VARIANTS or not left:
        raise Forbidden("this media link is expired or invalid")
    if requester_id is not None and viewer and requester_id != viewer:
        raise Forbidden("this media link was issued to someone else")
    media_id = parse_media_id(raw_id)
    async with rt.db.connection() as conn:
        row = await store.get(conn, media_id)
    if row is None or row.status != "ready" or (variant != "full" and variant not in row.variants):
        raise NotFound("no such media")
    content_type = (
        (row.content_type or "application/octet-stream") if variant == "full" else "image/jpeg"
    )
    key = media_key(media_id, variant)
    # Storage links live no longer than a minute, and never past the signed link's expiry.
    redirect = await rt.media_store.presigned_get(key, content_type, min(left, 60))
    if redirect is not None:
        return Delivery(content_type, left, redirect=redirect)
    path = rt.media_store.local_path(key)
    if path is None or not path.exists():
        raise NotFound("no such media")
    return Delivery(content_type, left, path=path)


async def remove(rt: Runtime, user_id: str, raw_id: str) -> None:
    """Delete an item that was never sent (or is still pending); sent items are retired."""
    media_id = parse_media_id(raw_id)
    async with rt.db.transaction() as conn:
        row = await store.get(conn, media_id, for_update=True)
        if row is None or row.owner_id != user_id:
            raise NotFound("no such media")
        if await store.is_used(conn, media_id):
            raise Conflict(
                "this media has been sent; retire it instead (buyers keep access)",
                {"retire": {"method": "POST", "path": f"/api/v1/media/{media_id}/retire"}},
            )
        await store.delete(conn, media_id)
    await rt.media_store.delete(keys_of(media_id))


async def retire(rt: Runtime, user_id: str, raw_id: str) -> MediaStatus:
    """No new sends of this item; everyone entitled keeps access."""
    media_id = parse_media_id(raw_id)
    async with rt.db.transaction() as conn:
        row = await store.get(conn, media_id, for_update=True)
        if row is None or row.owner_id != user_id:
            raise NotFound("no such media")
        await store.retire(conn, media_id)
        retired = await store.get(conn, media_id)
    assert retired is not None
    return MediaStatus.of(retired)
