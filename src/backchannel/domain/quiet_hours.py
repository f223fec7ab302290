"""Quiet hours and the summary push that ends them: pure rules, `now` always passed in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backchannel.inputs import IanaTimeZone

_CLOCK = r"^([01]\d|2[0-3]):[0-5]\d$"


class QuietHours(BaseModel):
    """`{start: "22:00", end: "08:00", time_zone: "Europe/Berlin"}`; may cross midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: Annotated[str, Field(pattern=_CLOCK, description="Local start, HH:MM (24h)")]
    end: Annotated[str, Field(pattern=_CLOCK, description="Local end, HH:MM (24h), exclusive")]
    time_zone: Annotated[IanaTimeZone, Field(description="An IANA time zone")]

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The time zone the clock times are in."""
        return ZoneInfo(self.time_zone)

    def contains(self, now: datetime) -> bool:
        """Whether `now` (aware) falls inside the quiet hours, in the user's zone."""
        local = now.astimezone(self.zone).time().replace(second=0, microsecond=0)
        start, end = _clock(self.start), _clock(self.end)
        if start < end:
            return start <= local < end
        return local >= start or local < end  # crosses midnight

    def next_end(self, now: datetime) -> datetime:
        """The first end of quiet hours after `now`, in UTC."""
        local = now.astimezone(self.zone)
        end = _clock(self.end)
        candidate = datetime.combine(local.date(), end, tzinfo=self.zone)
        if candidate <= local:
            candidate = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=self.zone)
        return candidate.astimezone(UTC)


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


# How a summary names each type: (one, many). Unknown types read "<type> notification(s)".
_LABELS = {
    "message": ("new message", "new messages"),
    "tip": ("tip", "tips"),
    "tip.received": ("tip", "tips"),
    "purchase.completed": ("purchase", "purchases"),
    "subscription.started": ("new subscriber", "new subscribers"),
}


def _label(type: str, count: int) -> str:
    one, many = _LABELS.get(type, (f"{type} notification", f"{type} notifications"))
    return f"{count} {one if count == 1 else many}"


def _names(names: Sequence[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    if len(names) == 3:
        return f"{names[0]}, {names[1]} and {names[2]}"
    return f"{names[0]}, {names[1]} and {len(names) - 2} others"


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def summary_text(items: Sequence[tuple[str, str | None]]) -> str:
    """One line for held pushes, e.g. "3 new messages from Ada and 1 tip".

    `items` are (type, who caused it or None), oldest first; types keep their first
    appearance's order, and messages say whom they are from.
    """
    counts: dict[str, int] = {}
    senders: dict[str, list[str]] = {}
    for type, actor in items:
        counts[type] = counts.get(type, 0) + 1
        known = senders.setdefault(type, [])
        if actor and actor not in known:
            known.append(actor)
    parts = []
    for type, count in counts.items():
        part = _label(type, count)
        if type == "message" and senders[type]:
            part += f" from {_names(senders[type])}"
        parts.append(part)
    return _join(parts)
