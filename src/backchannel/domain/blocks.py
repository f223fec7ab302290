"""Blocking: while A blocks B, nothing of B reaches A and the two cannot DM each other.

What a block changes, and where that is enforced:
- B's (and A's) `conversation:open` of their DM and `message:send` into it answer `forbidden`
  with `details.reason: "blocked"` (`refuse_direct`, and in the append statement itself);
- B's messages in shared groups are not delivered to A, and A's reads hide what B sent while
  blocked (`persistence.messages.NOT_HIDDEN`, `_PARTICIPANTS`);
- typing, presence and notifications caused by B skip A (the node's `BlockCache`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from backchannel.errors import Forbidden, Invalid, NotFound
from backchannel.persistence import blocks, users
from backchannel.persistence.blocks import Block
from backchannel.persistence.database import Connection
from backchannel.rooms.names import Namespace, presence_room

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

BLOCKED = "blocked"


class BlockRequest(BaseModel):
    """`POST /blocks`."""

    model_config = ConfigDict(extra="forbid")
    user_id: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]


class BlockView(BaseModel):
    """A user the caller blocks."""

    user_id: str
    created_at: str


class BlockList(BaseModel):
    """`GET /blocks`: everyone the caller blocks, newest first."""

    items: list[BlockView]
    next_cursor: str | None = None


def _view(block: Block) -> BlockView:
    return BlockView(user_id=block.user_id, created_at=block.created_at.isoformat())


def blocked_error() -> Forbidden:
    """The refusal either side of a block gets; it does not say who blocked whom."""
    return Forbidden("you cannot message this user", {"reason": BLOCKED})


async def block(rt: Runtime, user_id: str, request: BlockRequest) -> BlockView:
    """Start blocking a user (again blocking someone already blocked changes nothing)."""
    if request.user_id == user_id:
        raise Invalid("you cannot block yourself", [{"field": "user_id", "message": "self"}])
    async with rt.db.transaction() as conn:
        if await users.get_active_user(conn, request.user_id) is None:
            raise NotFound("no such user", [{"field": "user_id", "message": "unknown user"}])
        made = await blocks.insert_block(conn, user_id, request.user_id)
    await rt.blocks.changed([user_id, request.user_id])
    # Neither watches the other's presence any more (each must subscribe again, and is refused).
    for watcher, watched in ((user_id, request.user_id), (request.user_id, user_id)):
        await rt.emitter.remove_user_from_room(Namespace.PRESENCE, watcher, presence_room(watched))
    return _view(made)


async def unblock(rt: Runtime, user_id: str, blocked_id: str) -> None:
    """Stop blocking: what comes next is delivered again; what was hidden stays hidden."""
    async with rt.db.transaction() as conn:
        ended = await blocks.end_block(conn, user_id, blocked_id)
    if not ended:
        raise NotFound("you do not block this user")
    await rt.blocks.changed([user_id, blocked_id])


async def list_blocks(rt: Runtime, user_id: str) -> BlockList:
    """Everyone the caller blocks."""
    async with rt.db.connection() as conn:
        found = await blocks.blocks_of(conn, user_id)
    return BlockList(items=[_view(b) for b in found])


async def refuse_direct(conn: Connection, user_id: str, other_id: str) -> None:
    """`forbidden` (`blocked`) when either of a DM's two people blocks the other."""
    if await blocks.either_blocks(conn, user_id, other_id):
        raise blocked_error()
