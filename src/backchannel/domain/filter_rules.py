"""The admin's filter list as this node last read it, and texts screened against it.

`screening` runs messages through these and the moderation hook; titles and display names
(`screen_text`) go through the filters only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from backchannel.domain import filters
from backchannel.domain.filters import FilterRules
from backchannel.errors import Invalid
from backchannel.persistence import content_filters

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

# How long a node trusts the filter list it read; a change made on this node applies at once.
RULES_TTL_SECONDS = 2.0
FILTERED = "filtered"


async def current_rules(rt: Runtime) -> FilterRules:
    """The filter list, read at most every `RULES_TTL_SECONDS` per node."""
    now = time.monotonic()
    if rt.filter_rules is not None and now - rt.filter_rules_read_at < RULES_TTL_SECONDS:
        return rt.filter_rules
    async with rt.db.connection() as conn:
        raw = await content_filters.get_rules(conn)
    rules = FilterRules.model_validate(raw) if raw else FilterRules()
    remember_rules(rt, rules, now)
    return rules


def remember_rules(rt: Runtime, rules: FilterRules, at: float | None = None) -> None:
    """A change committed on this node applies here at once."""
    rt.filter_rules = rules
    rt.filter_rules_read_at = time.monotonic() if at is None else at


def refuse(field: str) -> Invalid:
    """The refusal of a text a `reject` rule matched."""
    return Invalid(
        "this text is not allowed here",
        {"reason": FILTERED, "fields": [{"field": field, "message": "filtered"}]},
    )


async def screen_text(rt: Runtime, text: str | None, field: str) -> tuple[str | None, bool]:
    """A title or display name through the filters: (the text to store, flagged)."""
    if not text:
        return text, False
    outcome = filters.apply(await current_rules(rt), text)
    if outcome.action == "reject":
        raise refuse(field)
    return outcome.text, outcome.action == "flag"
