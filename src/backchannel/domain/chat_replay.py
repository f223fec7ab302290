"""Replay on connect: a `/chat` socket whose handshake says where each conversation was left
(`auth.last_seq`) is sent what it missed, then `messages:replayed` for each conversation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backchannel.domain import broadcasts
from backchannel.domain.chat import SYNC_PAGE_DEFAULT, is_id
from backchannel.domain.chat_views import render_for_viewer
from backchannel.domain.event_models import MessagesReplayed
from backchannel.persistence import conversations, messages
from backchannel.rooms.names import Namespace

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

REPLAY_MAX_CONVERSATIONS = 100


def replay_positions(auth: Any) -> dict[int, int]:
    """`auth.last_seq` of a handshake as {conversation: seq}; malformed entries are ignored.

    A bad entry never refuses the connection: the client can still sync by hand.
    """
    raw = auth.get("last_seq") if isinstance(auth, dict) else None
    if not isinstance(raw, dict):
        return {}
    positions: dict[int, int] = {}
    for key, seq in raw.items():
        if len(positions) >= REPLAY_MAX_CONVERSATIONS:
            break
        if isinstance(key, str) and is_id(key) and type(seq) is int and seq >= 0:
            positions[int(key)] = seq
    return positions


async def replay_missed(rt: Runtime, user_id: str, sid: str, positions: dict[int, int]) -> None:
    """Send one socket what it missed after each position, then `messages:replayed` for each.

    Conversations the user is not in are skipped silently; more than one sync page is left to
    `messages:sync` (`has_more: true`).
    """
    if positions:
        await broadcasts.settle_for_viewer(rt, user_id)
    for conversation_id, after in positions.items():
        async with rt.db.connection() as conn:
            row = await conversations.get_conversation(conn, conversation_id)
            if row is None or user_id not in row.participant_ids:
                continue
            rows = await messages.after_seq(
                conn, conversation_id, user_id, after, SYNC_PAGE_DEFAULT + 1
            )
        page = rows[:SYNC_PAGE_DEFAULT]
        for stored in page:
            message = render_for_viewer(stored, user_id, rt.media_links)
            await rt.emitter.to_socket(Namespace.CHAT, sid, "message:new", message)
        done = MessagesReplayed(
            conversation_id=str(conversation_id),
            up_to_seq=page[-1].seq if page else after,
            has_more=len(rows) > SYNC_PAGE_DEFAULT,
        )
        await rt.emitter.to_socket(Namespace.CHAT, sid, "messages:replayed", done)
