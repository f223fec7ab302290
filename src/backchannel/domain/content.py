"""Creators' posts: public, for subscribers, or pay-per-view, and who may see each whole."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator

from backchannel.domain.media import MediaRef, attach_media, pick_media
from backchannel.domain.media_views import (
    ExternalMedia,
    MediaView,
    PreviewMedia,
    previews,
    render_media,
)
from backchannel.domain.payment_models import Cents
from backchannel.errors import Forbidden, Invalid, NotFound, PaymentRequired
from backchannel.inputs import INT64_MAX, MediaUrl, require_https
from backchannel.persistence import content as store
from backchannel.persistence import subscriptions, unlocks, users
from backchannel.persistence.content import ContentRow, Visibility

if TYPE_CHECKING:
    from backchannel.media.links import MediaLinks
    from backchannel.server.runtime import Runtime


class MediaItem(BaseModel):
    """An attachment: where it is and what kind."""

    model_config = ConfigDict(extra="forbid")
    url: MediaUrl
    type: Annotated[str, Field(min_length=1, max_length=50)]


# An uploaded item by id, or an external `{url, type}` (free messages and content only).
AttachmentIn = Annotated[
    MediaRef | MediaItem,
    PlainValidator(pick_media(MediaItem), json_schema_input_type=MediaRef | MediaItem),
]


class ContentCreate(BaseModel):
    """`POST /content`."""

    # The document says what `_price_matches_visibility` enforces.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {
                    "anyOf": [
                        {
                            "required": ["visibility", "price_cents"],
                            "properties": {
                                "visibility": {"const": "ppv"},
                                "price_cents": {"type": "integer"},
                            },
                        },
                        {
                            "properties": {
                                "visibility": {"enum": ["public", "subscribers"]},
                                "price_cents": {"type": "null"},
                            }
                        },
                    ]
                },
                {
                    "anyOf": [
                        {
                            "required": ["title"],
                            "properties": {"title": {"type": "string", "minLength": 1}},
                        },
                        {
                            "required": ["body"],
                            "properties": {"body": {"type": "string", "minLength": 1}},
                        },
                        {
                            "required": ["media"],
                            "properties": {"media": {"type": "array", "minItems": 1}},
                        },
                    ]
                },
            ]
        },
    )
    title: Annotated[str, Field(max_length=200)] | None = None
    body: Annotated[str, Field(max_length=50_000)] | None = None
    media: Annotated[list[AttachmentIn], Field(max_length=50)] = []
    visibility: Visibility
    price_cents: Cents | None = None
    currency: Annotated[str, Field(pattern=r"^[a-z]{3}$")] = "usd"
    preview_text: Annotated[str, Field(max_length=280)] | None = None

    @model_validator(mode="after")
    def _price_matches_visibility(self) -> ContentCreate:
        if self.visibility == "ppv" and self.price_cents is None:
            raise ValueError("ppv content needs price_cents")
        if self.visibility != "ppv" and self.price_cents is not None:
            raise ValueError("only ppv content has a price")
        if not (self.title or self.body or self.media):
            raise ValueError("content needs a title, a body or media")
        return self


class Preview(BaseModel):
    """What a locked item shows: teaser text, media count, blurred previews of uploads."""

    text: str | None
    media_count: int
    media: list[PreviewMedia] = []


class ContentView(BaseModel):
    """A post: whole, or a teaser (`locked: true`, no body or media)."""

    id: str
    creator_id: str
    title: str | None
    visibility: Visibility
    price_cents: int | None
    currency: str
    created_at: datetime
    locked: bool
    body: str | None
    media: list[MediaView | ExternalMedia]
    preview: Preview | None = None


class ContentPage(BaseModel):
    """`GET /creators/{id}/content`."""

    items: list[ContentView]
    next_cursor: str | None


Viewer = Literal["creator", "subscriber", "buyer", "other"]


def may_see(visibility: Visibility, *, is_creator: bool, subscribed: bool, bought: bool) -> bool:
    """Whether a viewer sees an item whole (pure; tested alone)."""
    if is_creator or visibility == "public":
        return True
    if visibility == "subscribers":
        return subscribed
    return bought


def render(item: ContentRow, *, whole: bool, viewer_id: str, links: MediaLinks) -> ContentView:
    """The item whole (media links signed for the viewer), or its teaser."""
    view = ContentView(
        id=item.id,
        creator_id=item.creator_id,
        title=item.title,
        visibility=item.visibility,
        price_cents=item.price_cents,
        currency=item.currency,
        created_at=item.created_at,
        locked=not whole,
        body=item.body if whole else None,
        media=render_media(item.media, viewer_id, links) if whole else [],
    )
    if not whole:
        view.preview = Preview(
            text=item.preview_text,
            media_count=len(item.media),
            media=previews(item.media, viewer_id, links),
        )
    return view


def how_to_pay(item: ContentRow, subscription_price_cents: int) -> dict[str, Any]:
    """`payment_required` details for a locked item."""
    if item.visibility == "subscribers":
        return {
            "price_cents": subscription_price_cents,
            "currency": "usd",
            "pay_with": ["subscription"],
            "subscribe": {
                "method": "POST",
                "path": f"/api/v1/creators/{item.creator_id}/subscription",
            },
        }
    return {
        "price_cents": item.price_cents,
        "currency": item.currency,
        "pay_with": ["wallet", "card"],
        "purchase": {
            "method": "POST",
            "path": "/api/v1/purchases",
            "body": {"kind": "content", "target_id": item.id, "pay_with": "wallet"},
        },
    }


async def create(rt: Runtime, creator_id: str, role: str, request: ContentCreate) -> ContentView:
    """A creator posts."""
    if role != "creator":
        raise Forbidden("only creators post content")
    require_https(
        [
            (f"media.{i}.url", str(m.url))
            for i, m in enumerate(request.media)
            if not isinstance(m, MediaRef)
        ],
        dev=rt.settings.env == "dev",
    )
    media = await attach_media(rt, creator_id, request.media, paid=request.visibility == "ppv")
    async with rt.db.transaction() as conn:
        item = await store.insert(
            conn,
            creator_id=creator_id,
            title=request.title,
            body=request.body,
            media=media,
            visibility=request.visibility,
            price_cents=request.price_cents,
            currency=request.currency,
            preview_text=request.preview_text,
        )
    return render(item, whole=True, viewer_id=creator_id, links=rt.media_links)


def _content_id(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise NotFound("no such content") from None
    if not 0 < value < 2**63:
        raise NotFound("no such content")
    return value


async def get(rt: Runtime, viewer_id: str, raw_id: str) -> ContentView:
    """The item whole if the viewer may see it; else `payment_required` with its teaser."""
    async with rt.db.connection() as conn:
        item = await store.get(conn, _content_id(raw_id))
        if item is None:
            raise NotFound("no such content")
        is_creator = item.creator_id == viewer_id
        subscribed = (
            item.visibility == "subscribers"
            and not is_creator
            and (await subscriptions.is_active(conn, viewer_id, item.creator_id))
        )
        bought = (
            item.visibility == "ppv"
            and not is_creator
            and (await unlocks.content_unlocked(conn, int(item.id), viewer_id))
        )
        if may_see(item.visibility, is_creator=is_creator, subscribed=subscribed, bought=bought):
            return render(item, whole=True, viewer_id=viewer_id, links=rt.media_links)
        creator = await users.get_active_user(conn, item.creator_id)
    details = how_to_pay(item, creator.subscription_price_cents if creator else 0)
    details["teaser"] = render(
        item, whole=False, viewer_id=viewer_id, links=rt.media_links
    ).model_dump(mode="json")
    what = "subscribe to" if item.visibility == "subscribers" else "buy"
    raise PaymentRequired(f"{what} this creator's content to see it", details)


def _cursor(raw: str | None) -> int | None:
    if not raw:
        return None
    try:
        value = int(base64.urlsafe_b64decode(raw.encode() + b"==").decode())
        if not 0 <= value <= INT64_MAX:
            raise ValueError("out of range")  # ids are bigint: Postgres would refuse it
        return value
    except (ValueError, UnicodeDecodeError):
        raise Invalid("bad cursor", [{"field": "cursor", "message": "not a cursor"}]) from None


async def list_by_creator(
    rt: Runtime, viewer_id: str, creator_id: str, cursor: str | None, limit: int = 20
) -> ContentPage:
    """A creator's posts, newest first; what the viewer may not see comes as teasers."""
    before = _cursor(cursor)
    async with rt.db.connection() as conn:
        creator = await users.get_active_user(conn, creator_id)
        if creator is None or creator.role != "creator":
            raise NotFound("no such creator")
        is_creator = creator_id == viewer_id
        subscribed = not is_creator and await subscriptions.is_active(conn, viewer_id, creator_id)
        rows = await store.list_by_creator(
            conn, creator_id, before_id=before, limit=limit + 1, viewer_id=viewer_id
        )
    items = [
        render(
            item,
            whole=may_see(
                item.visibility, is_creator=is_creator, subscribed=subscribed, bought=bought
            ),
            viewer_id=viewer_id,
            links=rt.media_links,
        )
        for item, bought in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = base64.urlsafe_b64encode(items[-1].id.encode()).decode().rstrip("=")
    return ContentPage(items=items, next_cursor=next_cursor)
