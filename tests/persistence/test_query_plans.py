"""Every hot messaging query is answered through an index, on tables big enough to matter.

The planner is free to choose (no `enable_seqscan = off`): 3,000 users and conversations and
90,000 messages make a sequential scan the wrong choice, and this test fails if one is chosen.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from backchannel.persistence import conversations, messages, users
from tests.services import RunServices

WATCHED = {"messages", "conversation_members", "conversations", "message_unlocks", "users"}

FILL = """
insert into users (id, display_name) select 'u' || g, 'U' || g from generate_series(1, 3000) g;
insert into conversations (kind, direct_key, created_by, last_seq, last_message_at)
select 'direct', 'u' || g || ' u' || (g % 3000 + 1), 'u' || g, 30, now() - g * interval '1 minute'
from generate_series(1, 3000) g;
insert into conversation_members (conversation_id, user_id)
select id, created_by from conversations
union all select id, split_part(direct_key, ' ', 2) from conversations;
insert into messages (conversation_id, seq, sender_id, client_id, body, price_cents)
select c.id, s,
       case when s % 2 = 0 then c.created_by else split_part(c.direct_key, ' ', 2) end,
       c.id || '-' || s, 'hello', case when s % 10 = 0 then 500 end
from conversations c, generate_series(1, 30) s;
insert into message_unlocks (message_id, user_id)
select m.id, split_part(c.direct_key, ' ', 2)
from messages m join conversations c on c.id = m.conversation_id
where m.price_cents is not null and m.sender_id = c.created_by;
analyze;
"""


@pytest.fixture
async def filled(services: RunServices) -> AsyncIterator[tuple[asyncpg.Connection, int]]:
    conn = await asyncpg.connect(services.database_url)
    try:
        await conn.execute(FILL)
        conversation_id = await conn.fetchval(
            "select id from conversations where created_by = 'u5'"
        )
        yield conn, conversation_id
    finally:
        await conn.close()


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def test_the_hot_queries_use_indexes(
    filled: tuple[asyncpg.Connection, int],
) -> None:
    conn, cid = filled
    message_id = await conn.fetchval(
        "select id from messages where conversation_id = $1 and seq = 15", cid
    )
    stamp = datetime.now(UTC)
    queries: dict[str, tuple[str, tuple[Any, ...]]] = {
        "message by client id": (messages.SELECT_BY_CLIENT_ID, ("u5", f"{cid}-2")),
        "message for a viewer": (messages.SELECT_FOR_VIEWER, ("u6", message_id)),
        "sync after seq": (messages.SELECT_AFTER_SEQ, ("u6", cid, 40, 101)),
        "history before seq": (messages.SELECT_BEFORE_SEQ, ("u6", cid, 2**62, 51)),
        "last messages": (messages.SELECT_AT_SEQS, ("u6", [cid, cid + 1], [30, 30])),
        "unread count": (messages.COUNT_UNREAD, (cid, 10, "u6")),
        "conversation": (conversations.SELECT_CONVERSATION, (cid,)),
        "direct by pair": (conversations.SELECT_DIRECT, ("u5 u6",)),
        "read pointer (locked)": (conversations.SELECT_READ_POINTER_FOR_UPDATE, (cid, "u6")),
        "read pointer update": (conversations.UPDATE_READ_POINTER, (cid, "u6", 5)),
        "conversation list": (conversations.SELECT_MEMBER_PAGE, ("u6", None, None, 51)),
        "conversation list, later page": (
            conversations.SELECT_MEMBER_PAGE,
            ("u6", stamp, cid, 51),
        ),
        "active users": (users.SELECT_ACTIVE_IDS, (["u1", "u2"],)),
        "append": (
            messages.APPEND_MESSAGE,
            (cid, "u5", "new-1", "hi", "[]", None, "usd", None),
        ),
        "append unless locked": (
            messages.TRY_APPEND_MESSAGE,
            (cid, "u5", "new-1", "hi", "[]", None, "usd", None),
        ),
        "append unless locked, batched": (
            messages.TRY_APPEND_MESSAGES,
            (
                [cid, cid + 1, cid + 2],
                ["u5", "u6", "u7"],
                ["new-1", "new-2", "new-3"],
                ["hi", "hi", None],
                ["[]", "[]", "[]"],
                [None, None, 500],
                ["usd", "usd", "usd"],
                [None, None, "teaser"],
            ),
        ),
    }
    bad = []
    for name, (sql, args) in queries.items():
        raw = await conn.fetchval("explain (format json) " + sql, *args)
        plan = json.loads(raw)[0]["Plan"]
        for node_ in _nodes(plan):
            if node_["Node Type"] == "Seq Scan" and node_.get("Relation Name") in WATCHED:
                bad.append(f"{name}: seq scan on {node_['Relation Name']}")
    assert bad == []
