"""Who sees content whole: the rule, alone."""

from __future__ import annotations

from backchannel.domain.content import may_see


def test_public_content_is_for_everyone() -> None:
    assert may_see("public", is_creator=False, subscribed=False, bought=False)


def test_subscriber_content_is_for_subscribers_and_the_creator() -> None:
    assert may_see("subscribers", is_creator=False, subscribed=True, bought=False)
    assert may_see("subscribers", is_creator=True, subscribed=False, bought=False)
    assert not may_see("subscribers", is_creator=False, subscribed=False, bought=True)


def test_ppv_content_is_for_buyers_and_the_creator_even_subscribers_pay() -> None:
    assert may_see("ppv", is_creator=False, subscribed=False, bought=True)
    assert may_see("ppv", is_creator=True, subscribed=False, bought=False)
    assert not may_see("ppv", is_creator=False, subscribed=True, bought=False)
