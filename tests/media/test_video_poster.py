"""With ffmpeg installed, a video gets its poster frame and a blurred preview of it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.media_support import fetch, upload
from tests.support import Api, Sockets

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is optional; without it videos get no poster"
)


def _real_video(folder: Path) -> bytes:
    target = folder / "clip.webm"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi",
            "-i", "testsrc=duration=1.5:size=320x240:rate=10", "-c:v", "libvpx", str(target),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return target.read_bytes()


async def test_a_locked_video_shows_its_blurred_poster_and_a_buyer_gets_the_poster(
    api: Api, sockets: Sockets, tmp_path: Path
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    clip = await upload(api, creator, _real_video(tmp_path), "video/webm")
    assert (clip["kind"], clip["width"], clip["height"]) == ("video", 320, 240)
    assert clip["duration_s"] == pytest.approx(1.5, abs=0.2) and clip["blurhash"]

    studio = await sockets.connect("/chat", creator)
    opened = await studio.call("conversation:open", {"participant_ids": [fan.id]})
    fan_chat = await sockets.connect("/chat", fan, events=("message:new",))
    sent = await studio.call(
        "message:send",
        {
            "conversation_id": opened["data"]["id"],
            "client_id": "v1",
            "media": [{"media_id": clip["media_id"]}],
            "price_cents": 300,
        },
    )
    assert sent["ok"], sent
    (locked,) = await fan_chat.wait_for("message:new")
    (shown,) = locked["preview"]["media"]
    assert shown["kind"] == "video" and "/preview?" in shown["preview_url"]
    assert (await fetch(api, shown["preview_url"]))[0] == 200
    poster = sent["data"]["media"][0]["thumbnail_url"]
    assert "/poster?" in poster
    status, body, headers = await fetch(api, poster, creator)
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
