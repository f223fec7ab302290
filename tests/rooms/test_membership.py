"""Membership rules, alone: who is in a conversation, who may send what, who sees it whole."""

from __future__ import annotations

import pytest

from backchannel.errors import Forbidden, Invalid, NotFound
from backchannel.rooms.membership import (
    check_price,
    direct_key,
    others,
    plan_participants,
    require_member,
    sees_whole,
)


def test_a_pair_has_one_direct_key_whoever_opens_it() -> None:
    assert direct_key("a", "b") == direct_key("b", "a") == "a b"


def test_one_other_person_makes_a_dm_and_more_make_a_group() -> None:
    dm = plan_participants("me", ["you", "me", "you"], max_members=10)
    assert dm.kind == "direct" and dm.member_ids == ("me", "you") and dm.direct_key == "me you"
    group = plan_participants("me", ["b", "a", "b"], max_members=10)
    assert group.kind == "group" and group.member_ids == ("me", "b", "a")
    assert group.direct_key is None


def test_nobody_else_or_too_many_is_invalid() -> None:
    with pytest.raises(Invalid):
        plan_participants("me", ["me"], max_members=10)
    with pytest.raises(Invalid):
        plan_participants("me", [], max_members=10)
    assert plan_participants("me", ["a", "b"], max_members=3).kind == "group"
    with pytest.raises(Invalid):
        plan_participants("me", ["a", "b", "c"], max_members=3)


def test_unknown_is_not_found_and_outsiders_are_forbidden() -> None:
    with pytest.raises(NotFound):
        require_member(False, [], "me")
    with pytest.raises(Forbidden):
        require_member(True, ["a", "b"], "me")
    require_member(True, ["a", "me"], "me")


def test_only_creators_price_messages_and_only_within_range() -> None:
    check_price("fan", None)
    with pytest.raises(Forbidden):
        check_price("fan", 500)
    for bad in (0, 99, 100_001, -5):
        with pytest.raises(Invalid):
            check_price("creator", bad)
    check_price("creator", 100)
    check_price("creator", 100_000)


def test_a_paid_message_is_whole_for_its_sender_and_unlockers_only() -> None:
    assert sees_whole(None, "creator", "fan", unlocked=False)
    assert sees_whole(500, "creator", "creator", unlocked=False)
    assert not sees_whole(500, "creator", "fan", unlocked=False)
    assert sees_whole(500, "creator", "fan", unlocked=True)


def test_others_leaves_out_the_actor() -> None:
    assert others(["a", "b", "c"], "b") == ["a", "c"]
