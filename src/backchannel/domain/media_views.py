"""How stored media appear on the wire: whole with per-viewer signed links, or as previews.

Messages and content hold snapshots of ready media (`snapshot`), or old-style external
`{url, type}` items (free messages only). A locked rendering is built from `previews` alone,
which can only ever carry a link to the blurred `preview` variant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from backchannel.media.links import MediaLinks
from backchannel.persistence.media import MediaRow


class MediaView(BaseModel):
    """An uploaded item for an entitled viewer: links signed for them, expiring together."""

    media_id: str
    kind: str
    content_type: str
    width: int | None
    height: int | None
    duration_s: float | None
    blurhash: str | None
    url: str
    thumbnail_url: str | None
    expires_at: datetime


class ExternalMedia(BaseModel):
    """An old-style attachment: a URL elsewhere (free messages only)."""

    url: str
    type: str


class PreviewMedia(BaseModel):
    """What a locked viewer may know of one item: its shape and the blurred image."""

    kind: str
    width: int | None
    height: int | None
    duration_s: float | None
    blurhash: str | None
    preview_url: str | None


def snapshot(row: MediaRow) -> dict[str, Any]:
    """What a message or content stores of a ready item (it never changes once ready)."""
    return {
        "media_id": str(row.id),
        "kind": row.kind,
        "content_type": row.content_type,
        "width": row.width,
        "height": row.height,
        "duration_s": row.duration_s,
        "blurhash": row.blurhash,
        "variants": row.variants,
    }


def render_item(item: dict[str, Any], viewer_id: str, links: MediaLinks) -> MediaView:
    """One stored item, whole, with links signed for `viewer_id`."""
    media_id = str(item["media_id"])
    full = links.link(media_id, "full", viewer_id)
    variants = item.get("variants") or []
    small = "thumbnail" if "thumbnail" in variants else "poster" if "poster" in variants else None
    return MediaView(
        media_id=media_id,
        kind=item["kind"],
        content_type=item["content_type"],
        width=item.get("width"),
        height=item.get("height"),
        duration_s=item.get("duration_s"),
        blurhash=item.get("blurhash"),
        url=full.url,
        thumbnail_url=links.link(media_id, small, viewer_id).url if small else None,
        expires_at=full.expires_at,
    )


def render_media(
    items: list[dict[str, Any]], viewer_id: str, links: MediaLinks
) -> list[MediaView | ExternalMedia]:
    """Every item of a message or content, whole, for one entitled viewer."""
    return [
        render_item(item, viewer_id, links)
        if "media_id" in item
        else ExternalMedia.model_validate(item)
        for item in items
    ]


def previews(items: list[dict[str, Any]], viewer_id: str, links: MediaLinks) -> list[PreviewMedia]:
    """The locked view of uploaded items: shape, blurhash and the blurred image's link only."""
    shown = []
    for item in items:
        if "media_id" not in item:
            continue
        has_preview = "preview" in (item.get("variants") or [])
        shown.append(
            PreviewMedia(
                kind=item["kind"],
                width=item.get("width"),
                height=item.get("height"),
                duration_s=item.get("duration_s"),
                blurhash=item.get("blurhash"),
                preview_url=(
                    links.link(str(item["media_id"]), "preview", viewer_id).url
                    if has_preview
                    else None
                ),
            )
        )
    return shown
