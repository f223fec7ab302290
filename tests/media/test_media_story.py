"""The paid-media story on each storage backend: uploads, locked previews, per-viewer links."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp.test_utils import TestServer
from PIL import Image

from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.media_support import (
    GPS_MARK,
    fetch,
    moto_endpoint,
    photo_with_gps,
    s3_settings,
    short_mp4,
    upload,
)
from tests.stripe_support import (
    FakeStripe,
    Webhooks,
    balanced_ledger,
    event,
    fake_stripe,
    sign,
    with_stripe,
)
from tests.support import Api, Sockets

__all__ = ["balanced_ledger", "fake_stripe", "moto_endpoint"]

pytestmark = pytest.mark.usefixtures("balanced_ledger")


@pytest.fixture(name="settings", params=["local", "s3"])
def media_settings(
    request: pytest.FixtureRequest, settings: Settings, fake_stripe: FakeStripe
) -> Settings:
    """Stripe faked; media on the local store or on a local S3-compatible server."""
    chosen = with_stripe(settings, fake_stripe)
    if request.param == "s3":
        chosen = s3_settings(chosen, request.getfixturevalue("moto_endpoint"))
    return chosen


def _media_links(payload: Any) -> list[str]:
    """Every media link anywhere in a payload."""
    text = json.dumps(payload)
    return [part.split('"')[0] for part in text.split('"/media/')[1:]]


def _variants(payload: Any) -> set[str]:
    return {link.split("?")[0].split("/")[1] for link in _media_links(payload)}


async def test_paid_photo_and_video_stay_locked_until_bought_and_links_bind_to_the_buyer(
    api: Api, sockets: Sockets, fake_stripe: FakeStripe, server: TestServer
) -> None:
    hooks = Webhooks(api)
    creator, fan, other_fan = (
        await api.register(role="creator"),
        await api.register(),
        await api.register(),
    )
    studio_inbox = await sockets.connect("/notifications", creator, events=("media:ready",))
    original = photo_with_gps()
    photo = await upload(api, creator, original, "image/jpeg")
    video = await upload(api, creator, short_mp4(2.5), "video/mp4")
    assert photo["kind"] == "image" and (photo["width"], photo["height"]) == (640, 480)
    assert photo["blurhash"] and photo["content_type"] == "image/jpeg"
    assert video["kind"] == "video" and video["duration_s"] == 2.5
    ready = await studio_inbox.wait_for("media:ready", 2)
    assert {r["media_id"] for r in ready} == {photo["media_id"], video["media_id"]}
    assert all(r["status"] == "ready" for r in ready)

    studio = await sockets.connect("/chat", creator)
    opened = await studio.call("conversation:open", {"participant_ids": [fan.id]})
    conversation_id = opened["data"]["id"]
    events = ("message:new", "ppv:unlocked", "ppv:locked")
    phone = await sockets.connect("/chat", fan, events=events)
    laptop = await sockets.connect("/chat", fan, events=events)
    phone_ppv = await sockets.connect("/ppv", fan, events=("ppv:unlocked", "ppv:locked"))
    laptop_ppv = await sockets.connect("/ppv", fan, events=("ppv:unlocked", "ppv:locked"))
    sent = await studio.call(
        "message:send",
        {
            "conversation_id": conversation_id,
            "client_id": "set-1",
            "body": "the full set",
            "media": [{"media_id": photo["media_id"]}, {"media_id": video["media_id"]}],
            "price_cents": 900,
            "preview_text": "new set",
        },
    )
    assert sent["ok"], sent
    message_id = sent["data"]["id"]
    # The sender sees it whole.
    assert [m["media_id"] for m in sent["data"]["media"]] == [photo["media_id"], video["media_id"]]

    # The fan's locked copy, everywhere: previews only, never a full-size link.
    live = [(await device.wait_for("message:new"))[0] for device in (phone, laptop)]
    synced = await phone.call("messages:sync", {"conversation_id": conversation_id, "after_seq": 0})
    listed = await phone.call("conversation:list", {})
    status, history = await api.call(
        "GET", f"/api/v1/conversations/{conversation_id}/messages", user=fan
    )
    assert status == 200
    locked_views = [*live, synced["data"]["items"][0], listed["data"]["items"][0]["last_message"]]
    locked_views.append(history["items"][0])
    for view in locked_views:
        assert view["locked"] is True and view["media"] == [] and view["body"] is None
        preview = view["preview"]
        assert preview["media_count"] == 2
        image_preview, video_preview = preview["media"]
        assert image_preview["kind"] == "image" and image_preview["blurhash"] == photo["blurhash"]
        assert image_preview["preview_url"] and video_preview["preview_url"] is None
        assert video_preview["duration_s"] == 2.5
    everything_locked = [*locked_views, phone.received, laptop.received, synced, listed, history]
    assert _variants(everything_locked) == {"preview"}
    status, blurred, headers = await fetch(api, image_preview["preview_url"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(blurred)).size[0] <= 480
    status, refused = await api.call("GET", f"/api/v1/media/{photo['media_id']}", user=fan)
    assert status == 402 and refused["error"]["details"]["unlock"]["message_id"] == message_id
    status, refused = await api.call("GET", f"/api/v1/media/{photo['media_id']}", user=other_fan)
    assert status == 403

    # The fan pays by card; both devices get the message whole, with links signed for them.
    short = await phone_ppv.call("ppv:unlock", {"message_id": message_id})
    card = short["error"]["details"]["card"]
    status, checkout = await api.call("POST", card["path"], json=card["body"], user=fan)
    assert status == 201, checkout
    pi = await hooks.pay_session(fake_stripe.sessions[checkout["session_id"]])
    downloads = []
    for device in (phone_ppv, laptop_ppv):
        (unlocked,) = await device.wait_for("ppv:unlocked")
        whole = unlocked["message"]
        assert whole["locked"] is False and whole["body"] == "the full set"
        image_view, video_view = whole["media"]
        assert image_view["media_id"] == photo["media_id"] and image_view["thumbnail_url"]
        status, body, headers = await fetch(api, image_view["url"], fan)
        assert status == 200 and "private" in headers["Cache-Control"]
        downloads.append(body)
        status, video_bytes, _ = await fetch(api, video_view["url"], fan)
        assert status == 200 and video_bytes == short_mp4_bytes_of(video_bytes)
        status, part, _ = await fetch(api, video_view["url"], fan, byte_range="bytes=4-11")
        assert status == 206 and part == video_bytes[4:12]
    assert downloads[0] == downloads[1]
    creator_copy = sent["data"]["media"][0]
    assert (await fetch(api, creator_copy["url"], creator))[1] == downloads[0]
    # The photo without its EXIF: same pixels, no camera, no position.
    served = Image.open(io.BytesIO(downloads[0]))
    assert not served.getexif() and GPS_MARK.encode() not in downloads[0]
    assert b"Exif" not in downloads[0]
    assert served.tobytes() == Image.open(io.BytesIO(original)).tobytes()

    # The link is the buyer's: another fan presenting it is refused, and so is any tampering.
    link = image_view["url"]
    assert (await fetch(api, link, other_fan))[0] == 403
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for tampered in (
        {**query, "v": other_fan.id},
        {**query, "exp": str(int(query["exp"]) + 3600)},
        {**query, "sig": query["sig"][:-1] + ("0" if query["sig"][-1] != "0" else "1")},
    ):
        assert (await fetch(api, f"{parts.path}?{urlencode(tampered)}"))[0] == 403
    assert (await fetch(api, parts.path.replace("/full", "/thumbnail") + "?" + parts.query))[
        0
    ] == 403
    status, fresh = await api.call("GET", f"/api/v1/media/{photo['media_id']}", user=fan)
    assert status == 200 and fresh["media_id"] == photo["media_id"]
    assert (await fetch(api, fresh["url"], fan))[1] == downloads[0]

    # Past its TTL the link answers 403 and serves nothing.
    runtime = server.app[RUNTIME]
    ttl = runtime.settings.media_url_ttl_seconds
    real_links = runtime.media_links
    runtime.media_links = dataclasses.replace(real_links, clock=lambda: time.time() + ttl + 1)
    try:
        status, body, _ = await fetch(api, link, fan)
        assert status == 403 and b"\xff\xd8" not in body
    finally:
        runtime.media_links = real_links

    # A refund re-locks the message: new links are refused at once.
    body = json.dumps(
        event("charge.refunded", {"id": "ch_media", "payment_intent": pi, "amount_refunded": 900})
    ).encode()
    status, _ = await hooks.post_raw(body, sign(body))
    assert status == 200
    for device in (phone_ppv, laptop_ppv):
        (relocked,) = await device.wait_for("ppv:locked")
        assert relocked["message"]["locked"] is True
        assert _variants(relocked) <= {"preview"}
    status, _ = await api.call("GET", f"/api/v1/media/{photo['media_id']}", user=fan)
    assert status == 402
    synced = await phone.call("messages:sync", {"conversation_id": conversation_id, "after_seq": 0})
    assert _variants(synced) == {"preview"}


def short_mp4_bytes_of(data: bytes) -> bytes:
    """Videos are served exactly as uploaded (the test's MP4 skeleton starts with `ftyp`)."""
    assert data[4:8] == b"ftyp"
    return data
