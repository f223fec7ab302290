"""Notification rules that need no client: retention, fan-out at scale, concurrent dedupe."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from aiohttp.test_utils import TestServer

from backchannel.domain import notification_inbox, notification_push, notifications
from backchannel.domain.notification_models import (
    Audience,
    NotificationContent,
    PublishRequest,
    SyncRequest,
)
from backchannel.rooms.names import Namespace, subscribers_room
from backchannel.server.app import create_app
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.services import RunServices
from tests.support import Api, Sockets


async def test_notifications_older_than_the_retention_period_are_pruned(
    server: TestServer, api: Api, services: RunServices
) -> None:
    rt = server.app[RUNTIME]
    fan = await api.register()
    old = await notifications.notify(rt, [fan.id], "x", "old")
    recent = await notifications.notify(rt, [fan.id], "x", "recent")
    conn = await asyncpg.connect(services.database_url)
    try:
        await conn.execute(
            "update notifications set created_at = now() - interval '91 days' where id = $1",
            int(old.id),
        )
        assert await notifications.prune(rt) == 1
        left = await conn.fetch("select notification_id from notification_receipts")
    finally:
        await conn.close()
    assert [row["notification_id"] for row in left] == [int(recent.id)]


async def test_ten_thousand_recipients_are_stored_at_once(
    server: TestServer, services: RunServices
) -> None:
    rt = server.app[RUNTIME]
    conn = await asyncpg.connect(services.database_url)
    try:
        await conn.execute(
            "insert into users (id, display_name) "
            "select 'bulk-' || n, 'Fan ' || n from generate_series(1, 9990) as n"
        )
    finally:
        await conn.close()
    ids = [f"bulk-{n}" for n in range(1, 9991)] + [f"ghost-{n}" for n in range(10)]
    request = PublishRequest(
        user_ids=ids, notification=NotificationContent(type="news", title="Big news")
    )
    started = time.perf_counter()
    result = await notifications.publish(rt, "events", request)
    elapsed = time.perf_counter() - started
    assert result.recipients == 9990 and result.skipped == [f"ghost-{n}" for n in range(10)]
    assert elapsed < 3, elapsed  # a statement per recipient would take far longer


async def test_concurrent_publishes_with_one_dedupe_key_store_once(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = server.app[RUNTIME]
    fan = await api.register()
    s = await sockets.connect("/notifications", fan, events=("notification",))
    request = PublishRequest(
        user_ids=[fan.id],
        notification=NotificationContent(type="x", title="once"),
        dedupe_key="same",
    )
    results = await asyncio.gather(
        *(notifications.publish(rt, "events", request) for _ in range(5))
    )
    assert len({r.id for r in results}) == 1
    await s.wait_for("notification")
    await s.assert_nothing("notification")
    # The same key used by another publisher is its own.
    other = await notifications.publish(rt, "rewards", request)
    assert other.id != results[0].id


async def test_a_large_fan_out_pushes_notifications_but_not_per_user_counts(
    server: TestServer, api: Api, sockets: Sockets
) -> None:
    rt = server.app[RUNTIME]
    rt.settings = rt.settings.model_copy(update={"notification_unread_push_max": 1})
    fans = [await api.register() for _ in range(2)]
    s = await sockets.connect(
        "/notifications", fans[0], events=("notification", "notifications:unread")
    )
    await notifications.notify(rt, [f.id for f in fans], "x", "to two")
    await s.wait_for("notification")
    await s.assert_nothing("notifications:unread")
    await notifications.notify(rt, [fans[0].id], "x", "to one")
    assert (await s.wait_for("notifications:unread"))[-1] == {"count": 2}


async def test_concurrent_notifications_with_one_collapse_key_leave_one_unread(
    server: TestServer, api: Api
) -> None:
    rt = server.app[RUNTIME]
    fan = await api.register()
    await asyncio.gather(
        *(
            notifications.notify(rt, [fan.id], "message", f"m{n}", collapse_key="conversation:1")
            for n in range(6)
        )
    )
    page = await notification_inbox.sync(rt, fan.id, SyncRequest())
    assert page.unread_count == 1 and len(page.items) == 1


async def test_a_fan_who_subscribes_while_connected_hears_the_next_audience_publish(
    cluster_settings: Settings, api: Api, services: RunServices
) -> None:
    node_a = TestServer(create_app(cluster_settings), host="127.0.0.1")
    node_b = TestServer(create_app(cluster_settings), host="127.0.0.1")
    await node_a.start_server()
    await node_b.start_server()
    on_b = Sockets(str(node_b.make_url("")).rstrip("/"))
    rt_a = node_a.app[RUNTIME]
    try:
        creator = await api.register(role="creator")
        fan = await api.register()
        s = await on_b.connect("/notifications", fan, events=("notification",))
        conn = await asyncpg.connect(services.database_url)
        try:
            await conn.execute(
                "insert into subscriptions (fan_id, creator_id, status) values ($1, $2, 'active')",
                fan.id,
                creator.id,
            )
        finally:
            await conn.close()
        request = PublishRequest(
            audience=Audience(creator_id=creator.id, of="subscribers"),
            notification=NotificationContent(type="content.new", title="New post"),
        )

        # The payments side, on node A, tells notifications once the subscription committed.
        await notification_push.join_audience(rt_a, fan.id, creator.id)
        first = await notifications.publish(rt_a, "events", request)
        assert first.recipients == 1
        assert (await s.wait_for("notification"))[0]["id"] == first.id

        await notification_push.leave_audience(rt_a, fan.id, creator.id)
        room = subscribers_room(creator.id)
        await rt_a.emitter.to_room(Namespace.NOTIFICATIONS, room, "notification", {"id": "x"})
        await s.assert_nothing("notification")
    finally:
        await on_b.close_all()
        await node_a.close()
        await node_b.close()
