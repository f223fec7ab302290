"""One rendering decides what each viewer sees of a message."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from backchannel.domain.chat_views import render_for_viewer
from backchannel.media.links import MediaLinks
from backchannel.persistence.messages import StoredMessage

LINKS = MediaLinks.from_secret("s" * 40, ttl_seconds=600)
PHOTO = {
    "media_id": "11",
    "kind": "image",
    "content_type": "image/jpeg",
    "width": 640,
    "height": 480,
    "duration_s": None,
    "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
    "variants": ["preview", "thumbnail"],
}
CLIP = {**PHOTO, "media_id": "12", "kind": "video", "content_type": "video/mp4", "variants": []}
PAID = StoredMessage(
    id=7,
    conversation_id=3,
    seq=2,
    sender_id="creator",
    client_id="c",
    body="the goods",
    media=[PHOTO, CLIP],
    price_cents=900,
    currency="usd",
    preview_text="teaser",
    broadcast_id=None,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def test_a_recipient_sees_only_the_preview_of_a_paid_message() -> None:
    seen = render_for_viewer(PAID, "fan", LINKS)
    assert seen.locked and seen.body is None and seen.media == []
    assert seen.preview is not None and seen.preview.text == "teaser"
    assert seen.preview.media_count == 2
    photo, clip = seen.preview.media
    assert photo.preview_url is not None and "/media/11/preview?" in photo.preview_url
    assert clip.preview_url is None and clip.kind == "video"
    assert seen.id == "7" and seen.conversation_id == "3" and seen.price_cents == 900
    dumped = seen.model_dump_json()
    assert "the goods" not in dumped and "/full" not in dumped and "/thumbnail" not in dumped


def test_the_sender_and_an_unlocker_see_it_whole_with_links_signed_for_them() -> None:
    for viewer, seen in (
        ("creator", render_for_viewer(PAID, "creator", LINKS)),
        ("fan", render_for_viewer(replace(PAID, unlocked=True), "fan", LINKS)),
    ):
        assert not seen.locked and seen.body == "the goods" and len(seen.media) == 2
        photo = seen.media[0].model_dump()
        assert f"v={viewer}" in photo["url"] and "/media/11/full?" in photo["url"]
        assert "/media/11/thumbnail?" in photo["thumbnail_url"]


def test_a_free_message_has_no_preview() -> None:
    seen = render_for_viewer(replace(PAID, price_cents=None, preview_text=None), "fan", LINKS)
    assert not seen.locked and seen.body == "the goods" and seen.preview is None


def test_external_media_of_an_old_free_message_stay_as_they_were() -> None:
    external = {"url": "https://cdn.example/a.jpg", "type": "image"}
    free = replace(PAID, price_cents=None, media=[external])
    assert render_for_viewer(free, "fan", LINKS).model_dump()["media"] == [external]
