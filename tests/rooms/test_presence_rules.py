"""Who may watch whom: the pure rule."""

from __future__ import annotations

from backchannel.persistence.presence import WatchFacts
from backchannel.rooms.presence_rules import may_watch


def _facts(user_id: str = "u2", role: str = "fan", **flags: bool) -> WatchFacts:
    return WatchFacts(
        user_id=user_id,
        exists=flags.get("exists", True),
        role=role,
        last_seen=None,
        shares_conversation=flags.get("shares_conversation", False),
        viewer_subscribes=flags.get("viewer_subscribes", False),
        subscribes_to_viewer=flags.get("subscribes_to_viewer", False),
    )


def test_strangers_may_not_watch_each_other() -> None:
    assert not may_watch("u1", "fan", _facts())
    assert not may_watch("u1", "creator", _facts(role="creator"))


def test_you_may_watch_yourself_and_people_you_share_a_conversation_with() -> None:
    assert may_watch("u1", "fan", _facts(user_id="u1"))
    assert may_watch("u1", "fan", _facts(shares_conversation=True))


def test_a_fan_may_watch_the_creators_they_subscribe_to() -> None:
    assert may_watch("u1", "fan", _facts(role="creator", viewer_subscribes=True))
    assert not may_watch("u1", "fan", _facts(role="fan", viewer_subscribes=True))


def test_a_creator_may_watch_their_subscribers_but_a_fan_may_not_watch_theirs() -> None:
    assert may_watch("u1", "creator", _facts(subscribes_to_viewer=True))
    assert not may_watch("u1", "fan", _facts(subscribes_to_viewer=True))


def test_unknown_users_look_forbidden() -> None:
    assert not may_watch("u1", "fan", _facts(user_id="u1", exists=False))
    assert not may_watch("u1", "fan", _facts(exists=False, shares_conversation=True))
