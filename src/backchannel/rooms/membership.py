"""Who may be in a conversation, who may see and send what: pure rules, no I/O."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from backchannel.errors import Forbidden, Invalid, NotFound

PRICE_MIN_CENTS = 100
PRICE_MAX_CENTS = 100_000


@dataclass(frozen=True)
class Participants:
    """The people a new conversation is opened with, normalised."""

    kind: str  # "direct" or "group"
    member_ids: tuple[str, ...]  # the opener first, then the others in the order given
    direct_key: str | None


def direct_key(a: str, b: str) -> str:
    """The one key of a 1:1 pair, whatever the order they are named in."""
    low, high = sorted((a, b))
    return f"{low} {high}"


def plan_participants(
    opener_id: str, participant_ids: Sequence[str], max_members: int
) -> Participants:
    """Normalise `conversation:open`: one other person is a DM, two or more a group."""
    others: list[str] = []
    for uid in participant_ids:
        if uid != opener_id and uid not in others:
            others.append(uid)
    if not others:
        raise Invalid(
            "a conversation needs someone else",
            [{"field": "participant_ids", "message": "name at least one other user"}],
        )
    if len(others) + 1 > max_members:
        raise Invalid(
            f"a conversation has at most {max_members} members",
            [{"field": "participant_ids", "message": f"at most {max_members - 1} others"}],
        )
    if len(others) == 1:
        return Participants("direct", (opener_id, others[0]), direct_key(opener_id, others[0]))
    return Participants("group", (opener_id, *others), None)


def require_member(exists: bool, member_ids: Collection[str], user_id: str) -> None:
    """`not_found` for an unknown conversation, `forbidden` for a non-member."""
    if not exists:
        raise NotFound("no such conversation")
    if user_id not in member_ids:
        raise Forbidden("you are not in this conversation")


def check_price(role: str, price_cents: int | None) -> None:
    """Only creators send paid messages, priced within the allowed range."""
    if price_cents is None:
        return
    if role != "creator":
        raise Forbidden("only creators send paid messages")
    if not PRICE_MIN_CENTS <= price_cents <= PRICE_MAX_CENTS:
        raise Invalid(
            "price out of range",
            [
                {
                    "field": "price_cents",
                    "message": f"between {PRICE_MIN_CENTS} and {PRICE_MAX_CENTS}",
                }
            ],
        )


def sees_whole(price_cents: int | None, sender_id: str, viewer_id: str, unlocked: bool) -> bool:
    """Whether a viewer sees a message's body and media: free, their own, or unlocked."""
    return price_cents is None or sender_id == viewer_id or unlocked


def others(member_ids: Collection[str], user_id: str) -> list[str]:
    """Everyone in a conversation except `user_id`."""
    return [uid for uid in member_ids if uid != user_id]
