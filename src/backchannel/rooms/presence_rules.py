"""Who may watch whose presence: pure rules over facts read in one query."""

from __future__ import annotations

from backchannel.persistence.presence import WatchFacts


def may_watch(viewer_id: str, viewer_role: str | None, facts: WatchFacts) -> bool:
    """Yourself; anyone you share a conversation with; creators you subscribe to; and, as a
    creator, your subscribers. Unknown and deleted users look the same as forbidden ones, so
    the answer does not reveal who exists."""
    if not facts.exists:
        return False
    if facts.user_id == viewer_id or facts.shares_conversation:
        return True
    if facts.role == "creator" and facts.viewer_subscribes:
        return True
    return viewer_role == "creator" and facts.subscribes_to_viewer
