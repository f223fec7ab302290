"""One rendering decides what each viewer sees of a message."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from backchannel.domain.chat_views import render_for_viewer
from backchannel.persistence.messages import StoredMessage

PAID = StoredMessage(
    id=7,
    conversation_id=3,
    seq=2,
    sender_id="creator",
    client_id="c",
    body="the goods",
    media=[{"url": "https://cdn.example/a.jpg", "type": "image"}] * 2,
    price_cents=900,
    currency="usd",
    preview_text="teaser",
    broadcast_id=None,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def test_a_recipient_sees_only_the_preview_of_a_paid_message() -> None:
    seen = render_for_viewer(PAID, "fan")
    assert seen.locked and seen.body is None and seen.media == []
    assert seen.preview is not None and seen.preview.model_dump() == {
        "text": "teaser",
        "media_count": 2,
    }
    assert seen.id == "7" and seen.conversation_id == "3" and seen.price_cents == 900
    assert "the goods" not in seen.model_dump_json() and "cdn.example" not in seen.model_dump_json()


def test_the_sender_and_an_unlocker_see_it_whole() -> None:
    for seen in (
        render_for_viewer(PAID, "creator"),
        render_for_viewer(replace(PAID, unlocked=True), "fan"),
    ):
        assert not seen.locked and seen.body == "the goods" and len(seen.media) == 2


def test_a_free_message_has_no_preview() -> None:
    seen = render_for_viewer(replace(PAID, price_cents=None, preview_text=None), "fan")
    assert not seen.locked and seen.body == "the goods" and seen.preview is None
