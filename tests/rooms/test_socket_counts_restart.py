"""Socket counts survive a Redis restart (issue #13, item 9).

After Redis restarted empty, presence wrote its counts again but socket counts did not, so
every user reading `/chat` got a `message` notification for each chat message until they
reconnected.
"""

from __future__ import annotations

from pathlib import Path

from backchannel.rooms.names import Namespace
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.chat_support import node, open_dm
from tests.nodes import eventually
from tests.outages import RedisServer


async def test_a_node_writes_its_socket_counts_again_after_a_redis_restart(
    settings: Settings, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    fast = {
        "redis_url": redis.url,
        "redis_ping_interval_seconds": 0.3,
        "redis_retry_max_seconds": 0.3,
        "redis_timeout_seconds": 1.0,
        "presence_heartbeat_seconds": 0.2,
        "presence_node_ttl_seconds": 2.0,
    }
    try:
        async with node(settings, **fast) as n:
            counts = n.server.app[RUNTIME].socket_counts
            assert counts is not None
            creator = await n.api.register(role="creator")
            fan = await n.api.register()
            conversation_id = await open_dm(n.sockets, creator, fan)
            bell = await n.sockets.connect("/notifications", fan, events=("notification",))
            await n.sockets.connect("/chat", fan)
            chat = await n.sockets.connect("/chat", creator)
            assert await counts.with_open(Namespace.CHAT, [fan.id]) == {fan.id}

            redis.stop()
            await redis.start()  # empty: no persistence

            async def counted_again() -> bool:
                try:
                    return await counts.with_open(Namespace.CHAT, [fan.id]) == {fan.id}
                except Exception:
                    return False  # the first command on a pooled connection may still fail

            await eventually(counted_again, what="the fan's /chat socket counted again")
            ack = await chat.call(
                "message:send",
                {"conversation_id": conversation_id, "client_id": "after", "body": "read live"},
            )
            assert ack["ok"], ack
            await bell.assert_nothing("notification", within=0.5)
    finally:
        redis.stop()
