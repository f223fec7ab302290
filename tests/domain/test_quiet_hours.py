"""Quiet hours and summary texts as pure rules (`now` passed in)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from backchannel.domain.push_delivery import RetryPolicy
from backchannel.domain.quiet_hours import QuietHours, summary_text

BERLIN_NIGHT = QuietHours(start="22:00", end="08:00", time_zone="Europe/Berlin")


def test_quiet_hours_crossing_midnight_hold_late_evening_and_early_morning() -> None:
    # Berlin is UTC+1 in January.
    assert BERLIN_NIGHT.contains(datetime(2026, 1, 10, 21, 30, tzinfo=UTC))  # 22:30 local
    assert BERLIN_NIGHT.contains(datetime(2026, 1, 11, 6, 59, tzinfo=UTC))  # 07:59 local
    assert not BERLIN_NIGHT.contains(datetime(2026, 1, 11, 7, 0, tzinfo=UTC))  # 08:00 local
    assert not BERLIN_NIGHT.contains(datetime(2026, 1, 10, 20, 59, tzinfo=UTC))  # 21:59 local


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours(start="12:00", end="13:30", time_zone="UTC")
    assert lunch.contains(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    assert lunch.contains(datetime(2026, 5, 1, 13, 29, tzinfo=UTC))
    assert not lunch.contains(datetime(2026, 5, 1, 13, 30, tzinfo=UTC))
    assert not lunch.contains(datetime(2026, 5, 1, 11, 59, tzinfo=UTC))


def test_quiet_hours_end_is_the_next_local_end_in_utc() -> None:
    # 23:00 Berlin in summer (UTC+2): ends 08:00 Berlin next day = 06:00 UTC.
    evening = datetime(2026, 7, 1, 21, 0, tzinfo=UTC)
    assert BERLIN_NIGHT.next_end(evening) == datetime(2026, 7, 2, 6, 0, tzinfo=UTC)
    # 03:00 Berlin: ends the same morning.
    night = datetime(2026, 7, 2, 1, 0, tzinfo=UTC)
    assert BERLIN_NIGHT.next_end(night) == datetime(2026, 7, 2, 6, 0, tzinfo=UTC)


def test_quiet_hours_end_follows_daylight_saving_changes() -> None:
    # The night clocks go forward (29 March 2026): 08:00 Berlin is already UTC+2.
    before = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # 23:00 local, UTC+1
    assert BERLIN_NIGHT.next_end(before) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "fields",
    [
        {"start": "22:00", "end": "08:00", "time_zone": "Mars/Olympus"},
        {"start": "24:00", "end": "08:00", "time_zone": "UTC"},
        {"start": "7:00", "end": "08:00", "time_zone": "UTC"},
        {"start": "08:00", "end": "08:00", "time_zone": "UTC"},
        {"start": "22:00", "end": "08:00"},
    ],
)
def test_bad_quiet_hours_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        QuietHours.model_validate(fields)


def test_summary_counts_types_and_names_who_wrote() -> None:
    items = [("message", "Ada"), ("message", "Ada"), ("tip.received", None), ("message", "Ada")]
    assert summary_text(items) == "3 new messages from Ada and 1 tip"


def test_summary_with_many_senders_and_kinds() -> None:
    items = [
        ("message", "Ada"),
        ("message", "Bo"),
        ("message", "Cy"),
        ("message", "Di"),
        ("tip", None),
        ("tip", None),
        ("promo", None),
    ]
    assert summary_text(items) == (
        "4 new messages from Ada, Bo and 2 others, 2 tips and 1 promo notification"
    )
    assert summary_text([("message", "Ada")]) == "1 new message from Ada"
    assert summary_text([("message", "Ada"), ("message", "Bo")]) == "2 new messages from Ada and Bo"


def test_retry_delay_doubles_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=2.0, max_seconds=60.0)
    assert policy.delay(0, None, 0.0) == 1.0
    assert policy.delay(0, None, 0.999) == pytest.approx(2.0, abs=0.01)
    assert policy.delay(3, None, 0.999) == pytest.approx(16.0, abs=0.05)
    assert policy.delay(10, None, 0.999) <= 60.0
    assert policy.delay(0, 30.0, 0.0) == 30.0
    assert policy.delay(0, 3600.0, 0.0) == 60.0  # a Retry-After beyond the cap is capped
