"""The creator's vault: what they uploaded, who got it, who bought it, and what it earned."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from backchannel.domain.media import MediaStatus, parse_media_id
from backchannel.domain.media_views import MediaView, render_item, snapshot
from backchannel.errors import Forbidden, Invalid, NotFound
from backchannel.persistence import media as media_store
from backchannel.persistence import vault
from backchannel.persistence.vault import FanUse

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

PAGE = 50


class VaultQuery(BaseModel):
    """`?cursor=&kind=`."""

    model_config = ConfigDict(extra="forbid")
    cursor: Annotated[str, Field(max_length=40)] | None = None
    kind: Literal["image", "video", "audio"] | None = None


class PageQuery(BaseModel):
    """`?cursor=`."""

    model_config = ConfigDict(extra="forbid")
    cursor: Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")] | None = None


class VaultItem(MediaStatus):
    """One item with the creator's own links and how it did."""

    media: MediaView
    sent_count: int
    unlocked_count: int
    revenue_cents: int
    last_sent_at: datetime | None


class VaultPage(BaseModel):
    """`GET /vault`."""

    items: list[VaultItem]
    next_cursor: str | None


class FanOfMedia(BaseModel):
    """A fan an item was sent to."""

    fan_id: str
    state: Literal["sent", "unlocked"]
    message_ids: list[str]
    first_sent_at: datetime
    unlocked_at: datetime | None


class FansPage(BaseModel):
    """`GET /vault/{media_id}/fans`."""

    items: list[FanOfMedia]
    next_cursor: str | None


class MediaOfFan(BaseModel):
    """An item a fan was sent (`sent`: free), offered (paid, not bought) or `bought`."""

    media_id: str
    state: Literal["sent", "offered", "bought"]
    message_ids: list[str]
    first_sent_at: datetime
    unlocked_at: datetime | None


class FanMediaPage(BaseModel):
    """`GET /fans/{fan_id}/media`."""

    items: list[MediaOfFan]
    next_cursor: str | None


def _numeric_cursor(raw: str | None) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise Invalid("bad cursor", [{"field": "cursor", "message": "use a next_cursor"}])
    return int(raw)


def _creator(role: str) -> None:
    if role != "creator":
        raise Forbidden("the vault is for creators")


async def list_vault(rt: Runtime, user_id: str, role: str, query: VaultQuery) -> VaultPage:
    """The creator's ready media, newest first, with counts and revenue."""
    _creator(role)
    before = _numeric_cursor(query.cursor)
    async with rt.db.connection() as conn:
        rows = await vault.page(conn, user_id, before, query.kind, PAGE + 1)
        shown = rows[:PAGE]
        figures = await vault.stats(conn, user_id, [row.id for row in shown])
    items = []
    for row in shown:
        stats = figures.get(row.id)
        items.append(
            VaultItem(
                **MediaStatus.of(row).model_dump(),
                media=render_item(snapshot(row), user_id, rt.media_links),
                sent_count=stats.sent_count if stats else 0,
                unlocked_count=stats.unlocked_count if stats else 0,
                revenue_cents=stats.revenue_cents if stats else 0,
                last_sent_at=stats.last_sent_at if stats else None,
            )
        )
    next_cursor = str(shown[-1].id) if len(rows) > PAGE else None
    return VaultPage(items=items, next_cursor=next_cursor)


async def fans_of_media(
    rt: Runtime, user_id: str, role: str, raw_id: str, query: PageQuery
) -> FansPage:
    """Every fan one of the creator's items was sent to, and whether they bought it."""
    _creator(role)
    media_id = parse_media_id(raw_id)
    async with rt.db.connection() as conn:
        row = await media_store.get(conn, media_id)
        if row is None or row.owner_id != user_id:
            raise NotFound("no such media")
        uses = await vault.fans_of(conn, user_id, media_id, query.cursor or None, PAGE + 1)
    shown = uses[:PAGE]
    items = [
        FanOfMedia(
            fan_id=use.fan_id,
            state="unlocked" if use.unlocked_at else "sent",
            message_ids=use.message_ids,
            first_sent_at=use.first_sent_at,
            unlocked_at=use.unlocked_at,
        )
        for use in shown
    ]
    return FansPage(items=items, next_cursor=shown[-1].fan_id if len(uses) > PAGE else None)


def _state(use: FanUse) -> Literal["sent", "offered", "bought"]:
    if use.unlocked_at is not None:
        return "bought"
    return "offered" if use.offered else "sent"


async def media_of_fan(
    rt: Runtime, user_id: str, role: str, fan_id: str, query: PageQuery
) -> FanMediaPage:
    """Everything of the creator's a fan was sent, offered and bought."""
    _creator(role)
    before = _numeric_cursor(query.cursor)
    if "\x00" in fan_id or len(fan_id) > 128:
        return FanMediaPage(items=[], next_cursor=None)
    async with rt.db.connection() as conn:
        uses = await vault.media_of_fan(conn, user_id, fan_id, before, PAGE + 1)
    shown = uses[:PAGE]
    items = [
        MediaOfFan(
            media_id=str(use.media_id),
            state=_state(use),
            message_ids=sorted(use.message_ids, key=int),
            first_sent_at=use.first_sent_at,
            unlocked_at=use.unlocked_at,
        )
        for use in shown
    ]
    next_cursor = str(shown[-1].media_id) if len(uses) > PAGE else None
    return FanMediaPage(items=items, next_cursor=next_cursor)
