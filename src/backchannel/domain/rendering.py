"""How a paid message looks to one viewer: whole, or locked with a preview.

Provisional until the chat feature's per-viewer rendering lands; the shape is PROTOCOL.md's
Message.
"""

from __future__ import annotations

from typing import Any

from backchannel.persistence.unlocks import PaidMessage


def render_message(message: PaidMessage, *, whole: bool) -> dict[str, Any]:
    """The wire form of a message, whole or locked."""
    data: dict[str, Any] = {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "sender_id": message.sender_id,
        "client_id": message.client_id,
        "created_at": message.created_at.isoformat(),
        "body": message.body,
        "media": message.media,
        "price_cents": message.price_cents,
        "currency": message.currency,
        "locked": False,
    }
    if message.price_cents is not None and not whole:
        data.update(
            body=None,
            media=[],
            locked=True,
            preview={"text": message.preview_text, "media_count": len(message.media)},
        )
    return data
