"""Relations between test users written straight into Postgres, for rules that read them
(presence privacy) before the flows that create them (chat, payments) are under test."""

from __future__ import annotations

import asyncpg


async def share_conversation(database_url: str, *user_ids: str) -> str:
    """A conversation with these members; returns its id."""
    conn = await asyncpg.connect(database_url)
    try:
        conversation_id = await conn.fetchval(
            "insert into conversations (kind, created_by) values ($1, $2) returning id",
            "direct" if len(user_ids) == 2 else "group",
            user_ids[0],
        )
        await conn.executemany(
            "insert into conversation_members (conversation_id, user_id) values ($1, $2)",
            [(conversation_id, uid) for uid in user_ids],
        )
        return str(conversation_id)
    finally:
        await conn.close()


async def subscribe(
    database_url: str, fan_id: str, creator_id: str, status: str = "active"
) -> None:
    """A subscription row of `fan_id` to `creator_id` with a Stripe status."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "insert into subscriptions (fan_id, creator_id, status) values ($1, $2, $3) "
            "on conflict (fan_id, creator_id) do update set status = excluded.status",
            fan_id,
            creator_id,
            status,
        )
    finally:
        await conn.close()
