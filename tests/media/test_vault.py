"""The vault after a broadcast with purchases, and `exclude: "owners"` skipping buyers."""

from __future__ import annotations

import pytest

from tests.media_support import photo_with_gps, short_mp4, upload
from tests.stripe_support import (
    Webhooks,
    balanced_ledger,
    fake_stripe,
    stripe_settings,
)
from tests.support import Api, Sockets

__all__ = ["balanced_ledger", "fake_stripe", "stripe_settings"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


async def test_the_vault_counts_sends_unlocks_and_revenue_and_a_rebroadcast_skips_owners(
    api: Api, sockets: Sockets
) -> None:
    hooks = Webhooks(api)
    creator = await api.register(role="creator")
    fans = [await api.register() for _ in range(3)]
    for fan in fans:
        await hooks.subscribe(fan, creator)
    photo = await upload(api, creator, photo_with_gps(), "image/jpeg")
    clip = await upload(api, creator, short_mp4(), "video/mp4")
    studio = await sockets.connect("/ppv", creator)
    first = await studio.call(
        "ppv:broadcast",
        {"client_id": "set-1", "price_cents": 700, "media": [{"media_id": photo["media_id"]}]},
    )
    assert first["ok"] and first["data"]["recipients"] == 3, first
    # Two of the three buy it from their wallets.
    for fan in fans[:2]:
        await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 700}, user=fan)
        chat = await sockets.connect("/chat", fan)
        listed = await chat.call("conversation:list", {})
        message_id = listed["data"]["items"][0]["last_message"]["id"]
        ppv = await sockets.connect("/ppv", fan)
        ack = await ppv.call("ppv:unlock", {"message_id": message_id, "pay_with": "wallet"})
        assert ack["ok"], ack

    status, page = await api.call("GET", "/api/v1/vault", user=creator)
    assert status == 200
    by_id = {item["media_id"]: item for item in page["items"]}
    assert [item["media_id"] for item in page["items"]] == [clip["media_id"], photo["media_id"]]
    shown = by_id[photo["media_id"]]
    assert (shown["sent_count"], shown["unlocked_count"], shown["revenue_cents"]) == (3, 2, 1400)
    assert shown["last_sent_at"] and "/full?" in shown["media"]["url"]
    assert by_id[clip["media_id"]]["sent_count"] == 0
    status, videos = await api.call("GET", "/api/v1/vault?kind=video", user=creator)
    assert [item["media_id"] for item in videos["items"]] == [clip["media_id"]]

    status, fans_page = await api.call(
        "GET", f"/api/v1/vault/{photo['media_id']}/fans", user=creator
    )
    assert status == 200
    states = {row["fan_id"]: row["state"] for row in fans_page["items"]}
    assert states == {fans[0].id: "unlocked", fans[1].id: "unlocked", fans[2].id: "sent"}
    status, history = await api.call("GET", f"/api/v1/fans/{fans[2].id}/media", user=creator)
    assert [(i["media_id"], i["state"]) for i in history["items"]] == [
        (photo["media_id"], "offered")
    ]
    status, history = await api.call("GET", f"/api/v1/fans/{fans[0].id}/media", user=creator)
    assert history["items"][0]["state"] == "bought" and history["items"][0]["unlocked_at"]
    assert (await api.call("GET", "/api/v1/vault", user=fans[0]))[0] == 403
    status, _ = await api.call("GET", f"/api/v1/vault/{photo['media_id']}/fans", user=fans[0])
    assert status == 403

    # Selling the same set again skips whoever already bought it.
    listeners = [await sockets.connect("/chat", fan, events=("message:broadcast",)) for fan in fans]
    again = await studio.call(
        "ppv:broadcast",
        {
            "client_id": "set-2",
            "price_cents": 901,
            "media": [{"media_id": photo["media_id"]}, {"media_id": clip["media_id"]}],
            "exclude": "owners",
        },
    )
    assert again["ok"] and again["data"]["recipients"] == 1, again
    (announced,) = await listeners[2].wait_for("message:broadcast")
    assert announced["price_cents"] == 901 and announced["locked"] is True
    for owner in listeners[:2]:
        await owner.assert_nothing("message:broadcast")
    status, fans_page = await api.call(
        "GET", f"/api/v1/vault/{clip['media_id']}/fans", user=creator
    )
    assert [row["fan_id"] for row in fans_page["items"]] == [fans[2].id]

    # The last fan buys the two-item set: its price is split over the items, to the cent.
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 901}, user=fans[2])
    chat = await sockets.connect("/chat", fans[2])
    listed = await chat.call("conversation:list", {})
    message_id = listed["data"]["items"][0]["last_message"]["id"]
    ppv = await sockets.connect("/ppv", fans[2])
    ack = await ppv.call("ppv:unlock", {"message_id": message_id, "pay_with": "wallet"})
    assert ack["ok"], ack
    status, page = await api.call("GET", "/api/v1/vault", user=creator)
    revenue = {item["media_id"]: item["revenue_cents"] for item in page["items"]}
    assert revenue == {photo["media_id"]: 1400 + 451, clip["media_id"]: 450}
