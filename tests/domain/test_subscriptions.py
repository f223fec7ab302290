"""Out-of-order Stripe subscription events converge: the rule, alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backchannel.domain.subscriptions import StripeState, supersedes
from backchannel.persistence.subscriptions import Subscription

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _row(status: str, version: datetime | None, stripe_id: str | None = "sub_1") -> Subscription:
    return Subscription(
        id="1",
        fan_id="f",
        creator_id="c",
        status=status,
        stripe_subscription_id=stripe_id,
        current_period_end=None,
        cancel_at_period_end=False,
        price_cents=None,
        state_version=version,
        created_at=T0,
        updated_at=T0,
    )


def _state(status: str, at: datetime, stripe_id: str = "sub_1") -> StripeState:
    return StripeState(stripe_id, "f", "c", status, at)


def test_a_first_state_is_always_taken() -> None:
    assert supersedes(_row("incomplete", None, None), _state("active", T0))


def test_an_older_event_never_overwrites_a_newer_state() -> None:
    later = T0 + timedelta(seconds=10)
    assert not supersedes(_row("past_due", later), _state("active", T0))
    assert supersedes(_row("active", T0), _state("past_due", later))


def test_within_one_second_the_later_lifecycle_stage_wins() -> None:
    assert not supersedes(_row("active", T0), _state("incomplete", T0))
    assert supersedes(_row("incomplete", T0), _state("active", T0))


def test_a_canceled_subscription_never_comes_back() -> None:
    later = T0 + timedelta(seconds=10)
    assert not supersedes(_row("canceled", T0), _state("active", later))


def test_a_new_subscription_replaces_an_ended_one_but_old_events_leave_a_live_one_alone() -> None:
    later = T0 + timedelta(seconds=10)
    assert supersedes(_row("canceled", T0, "sub_old"), _state("active", later, "sub_new"))
    assert not supersedes(_row("active", later, "sub_new"), _state("canceled", later, "sub_old"))
