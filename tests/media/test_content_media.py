"""Content holds uploaded media too: teasers show blurred previews, buyers get their links."""

from __future__ import annotations

import json

import pytest

from tests.media_support import fetch, photo_with_gps, upload
from tests.stripe_support import balanced_ledger, fake_stripe, stripe_settings
from tests.support import Api

__all__ = ["balanced_ledger", "fake_stripe", "stripe_settings"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


async def test_ppv_content_with_a_photo_is_a_teaser_until_bought(api: Api) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    photo = await upload(api, creator, photo_with_gps(), "image/jpeg")
    status, external = await api.call(
        "POST",
        "/api/v1/content",
        json={
            "visibility": "ppv",
            "price_cents": 400,
            "media": [{"url": "https://cdn.example/a.jpg", "type": "image"}],
        },
        user=creator,
    )
    assert status == 400 and external["error"]["code"] == "invalid"
    status, post = await api.call(
        "POST",
        "/api/v1/content",
        json={
            "title": "Set",
            "visibility": "ppv",
            "price_cents": 400,
            "media": [{"media_id": photo["media_id"]}],
        },
        user=creator,
    )
    assert status == 201 and post["media"][0]["media_id"] == photo["media_id"]

    status, locked = await api.call("GET", f"/api/v1/content/{post['id']}", user=fan)
    assert status == 402
    teaser = locked["error"]["details"]["teaser"]
    assert teaser["media"] == [] and teaser["preview"]["media"][0]["preview_url"]
    status, listing = await api.call("GET", f"/api/v1/creators/{creator.id}/content", user=fan)
    assert "/full?" not in json.dumps([locked, listing])
    status, refused = await api.call("GET", f"/api/v1/media/{photo['media_id']}", user=fan)
    assert status == 402 and refused["error"]["details"]["purchase"]["body"]["kind"] == "content"

    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 400}, user=fan)
    status, bought = await api.call(
        "POST",
        "/api/v1/purchases",
        json={"kind": "content", "target_id": post["id"], "pay_with": "wallet"},
        user=fan,
    )
    assert status in (200, 201), bought
    status, whole = await api.call("GET", f"/api/v1/content/{post['id']}", user=fan)
    assert status == 200
    link = whole["media"][0]["url"]
    assert f"v={fan.id}" in link and (await fetch(api, link, fan))[0] == 200
    status, fresh = await api.call("GET", f"/api/v1/media/{photo['media_id']}", user=fan)
    assert status == 200 and fresh["thumbnail_url"]
    # The creator's view of this fan lists what they bought as content, beside any messages.
    status, history = await api.call("GET", f"/api/v1/fans/{fan.id}/media", user=creator)
    assert status == 200
    (item,) = history["items"]
    assert (item["media_id"], item["state"], item["message_ids"]) == (
        photo["media_id"],
        "bought",
        [],
    )
    assert item["unlocked_at"]
