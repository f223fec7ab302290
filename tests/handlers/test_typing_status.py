"""Typing indicators reach only the other participants, are throttled, and expire alone."""

from __future__ import annotations

from backchannel.server.settings import Settings
from tests.chat_support import node, open_dm
from tests.support import Api, Sockets


async def test_typing_reaches_the_other_participants_only(api: Api, sockets: Sockets) -> None:
    creator, fan, outsider = (
        await api.register(role="creator"),
        await api.register(),
        await api.register(),
    )
    conversation_id = await open_dm(sockets, creator, fan)
    typer = await sockets.connect("/typing", fan, events=("typing",))
    typer_other_device = await sockets.connect("/typing", fan, events=("typing",))
    creator_socket = await sockets.connect("/typing", creator, events=("typing",))
    stranger = await sockets.connect("/typing", outsider, events=("typing",))

    assert await typer.call("typing:start", {"conversation_id": conversation_id}) == {
        "ok": True,
        "data": {},
    }
    start = {"conversation_id": conversation_id, "user_id": fan.id, "typing": True}
    assert await creator_socket.wait_for("typing") == [start]
    assert (await typer.call("typing:stop", {"conversation_id": conversation_id}))["ok"]
    stop = {**start, "typing": False}
    assert await creator_socket.wait_for("typing", 2) == [start, stop]
    for socket in (typer, typer_other_device, stranger):
        await socket.assert_nothing("typing")

    refused = await stranger.call("typing:start", {"conversation_id": conversation_id})
    assert refused["error"]["code"] == "forbidden"
    refused = await stranger.call("typing:stop", {"conversation_id": conversation_id})
    assert refused["error"]["code"] == "forbidden"
    unknown = await stranger.call("typing:start", {"conversation_id": "777777"})
    assert unknown["error"]["code"] == "not_found"
    wrong = await typer.call("typing:start", {"conversation_id": 5})
    assert wrong["error"]["code"] == "invalid"
    await creator_socket.assert_nothing("typing")


async def test_repeated_starts_are_throttled_and_a_start_expires_by_itself(
    settings: Settings,
) -> None:
    async with node(settings, typing_timeout_seconds=0.8, typing_throttle_seconds=0.5) as n:
        creator, fan = await n.api.register(role="creator"), await n.api.register()
        conversation_id = await open_dm(n.sockets, creator, fan)
        typer = await n.sockets.connect("/typing", fan)
        watcher = await n.sockets.connect("/typing", creator, events=("typing",))
        for _ in range(5):
            assert (await typer.call("typing:start", {"conversation_id": conversation_id}))["ok"]
        [first] = await watcher.wait_for("typing")
        assert first["typing"] is True
        # Nothing more until it expires: the burst of starts was broadcast once.
        [_, expired] = await watcher.wait_for("typing", 2, timeout=3)
        assert expired == {**first, "typing": False}
        await watcher.assert_nothing("typing", within=0.3)


async def test_a_typing_socket_that_disconnects_stops_typing(api: Api, sockets: Sockets) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    conversation_id = await open_dm(sockets, creator, fan)
    typer = await sockets.connect("/typing", fan)
    watcher = await sockets.connect("/typing", creator, events=("typing",))
    await typer.call("typing:start", {"conversation_id": conversation_id})
    await watcher.wait_for("typing")
    await typer.disconnect()
    [_, gone] = await watcher.wait_for("typing", 2)
    assert gone == {"conversation_id": conversation_id, "user_id": fan.id, "typing": False}
