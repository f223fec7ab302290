"""Content: public, subscribers and ppv items, as each kind of viewer sees them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.stripe_support import (
    FakeStripe,
    Webhooks,
    balanced_ledger,
    fake_stripe,
    stripe_settings,
)
from tests.support import Api, Sockets, User

__all__ = ["balanced_ledger", "fake_stripe", "stripe_settings"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


async def _post(api: Api, creator: User, **body: Any) -> dict[str, Any]:
    status, item = await api.call("POST", "/api/v1/content", json=body, user=creator)
    assert status == 201, item
    return dict(item)


async def test_each_kind_of_viewer_sees_what_the_rules_allow(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe
) -> None:
    creator = await api.register(role="creator")
    await api.call(
        "PATCH", "/api/v1/profiles/me", json={"subscription_price_cents": 800}, user=creator
    )
    subscriber, buyer, passerby = await api.register(), await api.register(), await api.register()
    await Webhooks(api).subscribe(subscriber, creator)
    public = await _post(api, creator, title="Hello", body="for all", visibility="public")
    members = await _post(
        api,
        creator,
        title="Members",
        body="for subscribers",
        media=[{"url": "https://cdn.example/a.jpg", "type": "image"}],
        visibility="subscribers",
        preview_text="members only",
    )
    ppv = await _post(
        api, creator, title="Special", body="for buyers", visibility="ppv", price_cents=1200
    )
    await api.call("POST", "/api/v1/dev/wallet/topup", json={"amount_cents": 1200}, user=buyer)
    ppv_socket = await sockets.connect("/ppv", buyer, events=("content:unlocked",))
    status, bought = await api.call(
        "POST",
        "/api/v1/purchases",
        json={"kind": "content", "target_id": ppv["id"], "pay_with": "wallet"},
        user=buyer,
    )
    assert status == 201, bought
    await ppv_socket.wait_for("content:unlocked")

    sees = {
        "creator": (creator, {public["id"], members["id"], ppv["id"]}),
        "subscriber": (subscriber, {public["id"], members["id"]}),
        "buyer": (buyer, {public["id"], ppv["id"]}),
        "passerby": (passerby, {public["id"]}),
    }
    for name, (viewer, whole) in sees.items():
        for item in (public, members, ppv):
            status, got = await api.call("GET", f"/api/v1/content/{item['id']}", user=viewer)
            if item["id"] in whole:
                assert status == 200, (name, item["title"], got)
                assert got["body"] == item["body"] and got["locked"] is False
            else:
                assert status == 402, (name, item["title"], got)
                error = got["error"]
                assert error["code"] == "payment_required"
                assert error["details"]["teaser"]["body"] is None
                assert error["details"]["teaser"]["locked"] is True
        status, listing = await api.call(
            "GET", f"/api/v1/creators/{creator.id}/content", user=viewer
        )
        assert status == 200
        assert {i["id"] for i in listing["items"] if not i["locked"]} == whole, name
        for teaser in (i for i in listing["items"] if i["locked"]):
            assert teaser["body"] is None and teaser["media"] == []

    _, locked_members = await api.call("GET", f"/api/v1/content/{members['id']}", user=passerby)
    details = locked_members["error"]["details"]
    assert details["price_cents"] == 800
    assert details["subscribe"]["path"] == f"/api/v1/creators/{creator.id}/subscription"
    assert details["teaser"]["preview"] == {
        "text": "members only",
        "media_count": 1,
        "media": [],  # an external item has no preview
    }
    _, locked_ppv = await api.call("GET", f"/api/v1/content/{ppv['id']}", user=passerby)
    assert locked_ppv["error"]["details"]["price_cents"] == 1200
    assert locked_ppv["error"]["details"]["purchase"]["body"]["target_id"] == ppv["id"]


async def test_only_creators_post_and_prices_match_visibility(api: Api) -> None:
    fan, creator = await api.register(), await api.register(role="creator")
    status, _ = await api.call(
        "POST", "/api/v1/content", json={"body": "x", "visibility": "public"}, user=fan
    )
    assert status == 403
    for bad in (
        {"body": "x", "visibility": "ppv"},
        {"body": "x", "visibility": "public", "price_cents": 100},
        {"visibility": "public"},
    ):
        status, answer = await api.call("POST", "/api/v1/content", json=bad, user=creator)
        assert status == 400, (bad, answer)


async def test_the_creator_list_pages_newest_first(api: Api) -> None:
    creator = await api.register(role="creator")
    for n in range(5):
        await _post(api, creator, title=f"post {n}", visibility="public")
    status, page = await api.call(
        "GET", f"/api/v1/creators/{creator.id}/content?limit=3", user=creator
    )
    assert status == 200
    assert [i["title"] for i in page["items"]] == ["post 4", "post 3", "post 2"]
    _, rest = await api.call(
        "GET",
        f"/api/v1/creators/{creator.id}/content?limit=3&cursor={page['next_cursor']}",
        user=creator,
    )
    assert [i["title"] for i in rest["items"]] == ["post 1", "post 0"]
    assert rest["next_cursor"] is None
    assert (await api.call("GET", "/api/v1/content/999999", user=creator))[0] == 404
