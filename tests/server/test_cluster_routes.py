"""Which channel carries a room, and how a node's subscriptions follow its sockets."""

from __future__ import annotations

import asyncio

from backchannel.server.cluster_routes import Channels, Subscriptions


def test_routed_rooms_have_channels_and_other_rooms_go_to_all() -> None:
    routes = Channels("bc")
    assert routes.room("user:42") == "bc:room:user:42"
    assert routes.room("subscribers:7") == "bc:room:subscribers:7"
    assert routes.room("presence:9") == "bc:room:presence:9"
    assert routes.room("session:1") is None  # emptied by each node, never emitted to
    assert routes.room("Xk3s9sid") is None  # a socket's own room
    assert routes.room(None) is None
    assert routes.node("abc") == "bc:node:abc"


class Wire:
    """What the subscriptions asked Redis for, and confirmations on demand."""

    def __init__(self) -> None:
        self.sent: list[tuple[bool, list[str]]] = []

    async def send(self, subscribe: bool, channels: list[str]) -> None:
        self.sent.append((subscribe, channels))


async def test_channels_are_subscribed_once_in_a_batch_and_waited_for() -> None:
    subs = Subscriptions(["bc:all"], linger=0.05)
    wire = Wire()
    await subs.linked(wire.send)
    assert wire.sent == [(True, ["bc:all"])]
    subs.confirm("bc:all")

    for _ in range(3):
        subs.hold("bc:room:user:1")  # three sockets of one user
    subs.hold("bc:room:user:2")
    waiting = asyncio.ensure_future(subs.wait(["bc:room:user:1"], timeout=5))
    await asyncio.sleep(0.01)
    assert wire.sent[1:] == [(True, ["bc:room:user:1", "bc:room:user:2"])]  # one batch
    assert not waiting.done()
    subs.confirm("bc:room:user:1")
    await asyncio.wait_for(waiting, 1)
    subs.confirm("bc:room:user:2")
    assert subs.count == 3


async def test_a_channel_lingers_after_its_last_socket_then_is_unsubscribed() -> None:
    subs = Subscriptions([], linger=0.05)
    wire = Wire()
    await subs.linked(wire.send)
    subs.hold("c")
    await asyncio.sleep(0)
    subs.confirm("c")
    subs.release("c")
    subs.sweep()
    await asyncio.sleep(0)
    assert (False, ["c"]) not in wire.sent  # too soon: a reconnect would find it subscribed
    await asyncio.sleep(0.06)
    subs.sweep()
    await asyncio.sleep(0)
    assert (False, ["c"]) in wire.sent and "c" not in subs.confirmed

    subs.hold("c")  # back again: subscribed anew, after the UNSUBSCRIBE on the same link
    await asyncio.sleep(0.01)
    assert wire.sent[-1] == (True, ["c"])


async def test_a_lost_link_releases_waiters_and_a_new_one_resubscribes_what_is_held() -> None:
    subs = Subscriptions(["all"], linger=1)
    first = Wire()
    await subs.linked(first.send)
    subs.hold("c")
    waiting = asyncio.ensure_future(subs.wait(["c"], timeout=5))
    await asyncio.sleep(0.01)
    subs.unlinked()
    await asyncio.wait_for(waiting, 1)  # nobody hangs on a dead link

    second = Wire()
    await subs.linked(second.send)
    assert second.sent == [(True, ["all", "c"])]
    subs.confirm("c")
    subs.confirm("unasked")  # a confirmation not asked for on this link changes nothing
    assert subs.confirmed == {"c"}
