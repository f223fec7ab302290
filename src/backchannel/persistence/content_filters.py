"""The admin-managed filter list: one JSON document."""

from __future__ import annotations

import json
from typing import Any

from backchannel.persistence.database import Connection

SELECT_RULES = "select rules from content_filters where id"


async def get_rules(conn: Connection) -> dict[str, Any] | None:
    """The stored rules, if an admin has set any."""
    raw = await conn.fetchval(SELECT_RULES)
    if raw is None:
        return None
    loaded: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return loaded


UPSERT_RULES = """
insert into content_filters (id, rules) values (true, $1::jsonb)
on conflict (id) do update set rules = excluded.rules, updated_at = now()
"""


async def set_rules(conn: Connection, rules: dict[str, Any]) -> None:
    """Replace the rules."""
    await conn.execute(UPSERT_RULES, json.dumps(rules))
