"""HTTP clients read their conversations and page back through history, newest first."""

from __future__ import annotations

from backchannel.server.settings import Settings
from tests.chat_support import node, open_dm, sent


async def test_history_pages_newest_first_with_a_before_seq_cursor(settings: Settings) -> None:
    async with node(settings, message_rate_limit="100/1s:100") as n:
        creator, fan = await n.api.register(role="creator"), await n.api.register()
        conversation_id = await open_dm(n.sockets, creator, fan)
        socket = await n.sockets.connect("/chat", creator)
        for i in range(1, 8):
            sent(
                await socket.call(
                    "message:send",
                    {"conversation_id": conversation_id, "client_id": f"h{i}", "body": str(i)},
                )
            )
        path = f"/api/v1/conversations/{conversation_id}/messages"
        seqs: list[int] = []
        cursor: str | None = None
        while True:
            query = f"?limit=3&before_seq={cursor}" if cursor else "?limit=3"
            status, page = await n.api.call("GET", path + query, user=fan)
            assert status == 200, page
            seqs.extend(m["seq"] for m in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seqs == [7, 6, 5, 4, 3, 2, 1]

        status, everything = await n.api.call("GET", path, user=fan)
        assert [m["seq"] for m in everything["items"]] == [7, 6, 5, 4, 3, 2, 1]
        assert everything["next_cursor"] is None

        status, listed = await n.api.call("GET", "/api/v1/conversations?limit=10", user=fan)
        assert status == 200
        [item] = listed["items"]
        assert item["id"] == conversation_id and item["unread_count"] == 7
        assert item["last_message"]["seq"] == 7 and listed["next_cursor"] is None

        for bad in ("?limit=201", "?limit=0", "?before_seq=x", "?before_seq=0", "?other=1"):
            status, body = await n.api.call("GET", path + bad, user=fan)
            assert status == 400 and body["error"]["code"] == "invalid", bad
        status, body = await n.api.call("GET", "/api/v1/conversations/99999/messages", user=fan)
        assert status == 404 and body["error"]["code"] == "not_found"
        status, body = await n.api.call("GET", path)
        assert status == 401
        status, body = await n.api.call("GET", "/api/v1/conversations?cursor=zz", user=fan)
        assert status == 400
