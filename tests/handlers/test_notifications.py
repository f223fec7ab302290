"""`/notifications`: stored first, delivered live to every device, synced on return."""

from __future__ import annotations

from aiohttp.test_utils import TestServer

from backchannel.domain import notifications
from backchannel.server.keys import RUNTIME
from tests.support import Api, Sockets

EVENTS = ("notification", "notifications:unread")


async def test_an_offline_user_gets_everything_on_sync(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = server.app[RUNTIME]
    fan = await api.register()
    for n in range(3):
        await notifications.notify(rt, [fan.id], "event.reminder", f"Reminder {n}", data={"n": n})

    s = await sockets.connect("/notifications", fan, events=EVENTS)
    first = await s.call("notifications:sync", {"limit": 2})
    assert first["ok"], first
    page = first["data"]
    assert [item["title"] for item in page["items"]] == ["Reminder 0", "Reminder 1"]
    assert page["unread_count"] == 3
    assert page["items"][0]["read"] is False and page["items"][0]["data"] == {"n": 0}
    assert page["next_cursor"] == page["items"][-1]["id"]

    rest = (await s.call("notifications:sync", {"after": page["next_cursor"]}))["data"]
    assert [item["title"] for item in rest["items"]] == ["Reminder 2"]
    assert rest["next_cursor"] is None


async def test_two_devices_both_receive_live_with_the_unread_count(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = server.app[RUNTIME]
    fan = await api.register()
    phone = await sockets.connect("/notifications", fan, events=EVENTS)
    laptop = await sockets.connect("/notifications", fan, events=EVENTS)

    result = await notifications.notify(rt, [fan.id], "tip.received", "You got a tip", body="$5")

    for device in (phone, laptop):
        (live,) = await device.wait_for("notification")
        assert live["id"] == result.id
        assert live["type"] == "tip.received" and live["body"] == "$5" and live["read"] is False
        assert (await device.wait_for("notifications:unread"))[-1] == {"count": 1}


async def test_marking_read_updates_every_device(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = server.app[RUNTIME]
    fan = await api.register()
    ids = [(await notifications.notify(rt, [fan.id], "x", f"n{i}")).id for i in range(3)]
    phone = await sockets.connect("/notifications", fan, events=EVENTS)
    laptop = await sockets.connect("/notifications", fan, events=EVENTS)

    ack = await phone.call("notifications:read", {"ids": [ids[0]]})
    assert ack == {"ok": True, "data": {"unread_count": 2}}
    assert (await laptop.wait_for("notifications:unread"))[-1] == {"count": 2}

    ack = await laptop.call("notifications:read", {"all": True})
    assert ack["data"] == {"unread_count": 0}
    assert (await phone.wait_for("notifications:unread", 2))[-1] == {"count": 0}

    # Nothing changed: no push.
    assert (await laptop.call("notifications:read", {"all": True}))["data"]["unread_count"] == 0
    await phone.assert_nothing("notifications:unread")
    items = (await phone.call("notifications:sync", {}))["data"]["items"]
    assert all(item["read"] for item in items)


async def test_read_with_neither_ids_nor_all_marks_nothing_and_bad_cursors_are_invalid(
    api: Api, sockets: Sockets
) -> None:
    fan = await api.register()
    s = await sockets.connect("/notifications", fan)
    # As the OpenAPI document allows for POST /notifications/read: `{}` is a no-op.
    ack = await s.call("notifications:read", {})
    assert ack == {"ok": True, "data": {"unread_count": 0}}
    ack = await s.call("notifications:sync", {"after": "not-a-cursor"})
    assert ack["error"]["code"] == "invalid" and ack["error"]["details"][0]["field"] == "after"


async def test_one_users_notifications_are_not_anothers(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = server.app[RUNTIME]
    alice, bob = await api.register(), await api.register()
    bob_socket = await sockets.connect("/notifications", bob, events=EVENTS)
    result = await notifications.notify(rt, [alice.id], "x", "for alice")

    await bob_socket.assert_nothing("notification")
    ack = await bob_socket.call("notifications:read", {"ids": [result.id]})
    assert ack["data"] == {"unread_count": 0}
    assert (await bob_socket.call("notifications:sync", {}))["data"]["items"] == []


async def test_a_collapse_key_keeps_one_unread_notification(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = server.app[RUNTIME]
    fan = await api.register()
    s = await sockets.connect("/notifications", fan, events=EVENTS)
    await notifications.notify(rt, [fan.id], "message", "1 new message", collapse_key="c:1")
    await notifications.notify(rt, [fan.id], "message", "2 new messages", collapse_key="c:1")

    live = await s.wait_for("notification", 2)
    assert live[1]["collapse_key"] == "c:1"
    page = (await s.call("notifications:sync", {}))["data"]
    assert [item["title"] for item in page["items"]] == ["2 new messages"]
    assert page["unread_count"] == 1

    await s.call("notifications:read", {"all": True})
    await notifications.notify(rt, [fan.id], "message", "1 new message", collapse_key="c:1")
    page = (await s.call("notifications:sync", {}))["data"]
    assert [(i["title"], i["read"]) for i in page["items"]] == [
        ("2 new messages", True),
        ("1 new message", False),
    ]


async def test_notify_in_delivers_only_after_the_callers_commit(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = server.app[RUNTIME]
    creator = await api.register(role="creator")
    s = await sockets.connect("/notifications", creator, events=EVENTS)

    async with rt.db.transaction() as conn:
        staged = await notifications.notify_in(conn, [creator.id], "ppv.purchased", "Sold!")
    await staged.deliver(rt)
    assert (await s.wait_for("notification"))[0]["id"] == staged.result.id
