"""Two nodes, one product: the fan on node A, the creator on node B, a publisher calling node
A's HTTP API and Stripe's webhooks arriving at node B. Every live event reaches the sockets it
is meant for, on whichever node they are, exactly once; nobody else hears anything."""

from __future__ import annotations

from typing import Any

import pytest

from backchannel.domain import api_keys
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.nodes import node
from tests.stripe_support import FakeStripe, Webhooks, fake_stripe, with_stripe
from tests.support import Socket

__all__ = ["fake_stripe"]


@pytest.fixture
def settings(settings: Settings, fake_stripe: FakeStripe) -> Settings:
    """Stripe pointed at the fake (cluster_settings builds on this)."""
    return with_stripe(settings, fake_stripe)


async def once(socket: Socket, event: str, count: int = 1) -> list[Any]:
    """Wait for `count` of `event`, then make sure no extra copy follows."""
    arrived = await socket.wait_for(event, count)
    await socket.assert_nothing(event, within=0.3)
    return arrived


async def test_every_live_event_reaches_the_right_sockets_once_across_nodes(
    cluster_settings: Settings, fake_stripe: FakeStripe
) -> None:
    async with node(cluster_settings) as a, node(cluster_settings) as b:
        creator = await b.api.register("creator")
        fan, bystander = await a.api.register(), await b.api.register()
        status, _ = await b.api.call(
            "PATCH", "/api/v1/profiles/me", json={"subscription_price_cents": 999}, user=creator
        )
        assert status == 200
        _, publisher_key = await api_keys.create_key(a.server.app[RUNTIME].db, "events")

        # The fan's devices are on node A; the creator's studio and a bystander on node B.
        fan_chat = await a.sockets.connect(
            "/chat", fan, events=("message:new", "message:broadcast")
        )
        fan_ppv = [
            await a.sockets.connect("/ppv", fan, events=("ppv:unlocked", "ppv:purchased"))
            for _ in range(2)
        ]
        fan_inbox = await a.sockets.connect("/notifications", fan, events=("notification",))
        studio = await b.sockets.connect(
            "/ppv", creator, events=("subscription:started", "ppv:purchased", "ppv:unlocked")
        )
        studio_chat = await b.sockets.connect("/chat", creator, events=("message:new",))
        studio_inbox = await b.sockets.connect("/notifications", creator, events=("notification",))
        bystander_chat = await b.sockets.connect(
            "/chat", bystander, events=("message:new", "message:broadcast")
        )
        bystander_inbox = await b.sockets.connect(
            "/notifications", bystander, events=("notification",)
        )

        # 1. The fan subscribes from node A; Stripe confirms at node B. The fan's open sockets
        #    on A join the creator's subscriber rooms without reconnecting.
        status, _ = await a.api.call(
            "POST", f"/api/v1/creators/{creator.id}/subscription", user=fan
        )
        assert status == 201
        await Webhooks(b.api).subscribe(fan, creator)
        [started] = await once(studio, "subscription:started")
        assert started["fan_id"] == fan.id
        [notice] = await once(studio_inbox, "notification")
        assert notice["type"] == "subscription.started"

        # 2. A publisher backend calls node A's API for the creator's audience.
        status, published = await a.api.call(
            "POST",
            "/api/v1/publish",
            json={
                "audience": {"creator_id": creator.id, "of": "subscribers"},
                "notification": {"type": "event.reminder", "title": "Live in 10 minutes"},
            },
            headers={"Authorization": f"Bearer {publisher_key}"},
        )
        assert status == 202, published
        [reminder] = await once(fan_inbox, "notification")
        assert reminder["id"] == published["id"]

        # 3. The creator, on node B, broadcasts a paid message and sends a paid DM.
        ack = await studio.call(
            "ppv:broadcast", {"client_id": "story-b", "body": "for everyone", "price_cents": 700}
        )
        assert ack["ok"] and ack["data"]["recipients"] == 1, ack
        [broadcast] = await once(fan_chat, "message:broadcast")
        opened = await studio_chat.call("conversation:open", {"participant_ids": [fan.id]})
        sent = await studio_chat.call(
            "message:send",
            {
                "conversation_id": opened["data"]["id"],
                "client_id": "story-dm",
                "body": "just for you",
                "price_cents": 500,
            },
        )
        assert sent["ok"], sent
        dms = await fan_chat.wait_for("message:new", 1)
        assert [m["id"] for m in dms] == [sent["data"]["id"]]
        assert dms[0]["locked"] is True and dms[0]["body"] is None

        # 4. The fan pays for the DM by card on node A; Stripe's webhook lands on node B.
        short = await fan_ppv[0].call("ppv:unlock", {"message_id": sent["data"]["id"]})
        assert short["error"]["code"] == "payment_required", short
        card = short["error"]["details"]["card"]
        status, checkout = await a.api.call("POST", card["path"], json=card["body"], user=fan)
        assert status == 201, checkout
        await Webhooks(b.api).pay_session(fake_stripe.sessions[checkout["session_id"]])
        for device in fan_ppv:
            [unlocked] = await once(device, "ppv:unlocked")
            assert unlocked["message"]["body"] == "just for you"
        [sale] = await once(studio, "ppv:purchased")
        assert (sale["buyer_id"], sale["amount_cents"]) == (fan.id, 500)

        # Exactly once, everywhere; the bystander heard nothing of it.
        await fan_chat.assert_nothing("message:new")
        await fan_chat.assert_nothing("message:broadcast")
        await studio.assert_nothing("ppv:unlocked")
        assert broadcast["sender_id"] == creator.id
        for event in ("message:new", "message:broadcast"):
            await bystander_chat.assert_nothing(event)
        await bystander_inbox.assert_nothing("notification")
