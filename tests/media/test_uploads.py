"""Uploads: limits, type sniffing from the bytes, deletion, and a flat memory while streaming."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import psutil
from aiohttp.test_utils import TestServer

from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.media_support import (
    photo_with_gps,
    png_bytes,
    put_bytes,
    short_mp4,
    start_upload,
    upload,
)
from tests.support import Api, Sockets

MiB = 1024 * 1024


def _stored(settings: Settings, media_id: str) -> list[str]:
    folder = settings.media_path / media_id
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_uploads_of_a_type_that_is_not_allowed_or_too_large_are_refused(
    api: Api, settings: Settings
) -> None:
    creator = await api.register(role="creator")
    status, body = await start_upload(api, creator, "application/x-msdownload", 1000)
    assert status == 400 and body["error"]["code"] == "invalid"
    status, body = await start_upload(api, creator, "image/jpeg", settings.media_max_bytes + 1)
    assert status == 413 and body["error"]["code"] == "too_large"
    status, body = await api.call(
        "POST",
        "/api/v1/media",
        json={"content_type": "image/png", "size_bytes": "12"},
        user=creator,
    )
    assert status == 400


async def test_the_real_type_comes_from_the_bytes_and_a_mismatch_deletes_the_object(
    api: Api, settings: Settings, sockets: Sockets
) -> None:
    creator = await api.register(role="creator")
    inbox = await sockets.connect("/notifications", creator, events=("media:ready",))
    executable = b"MZ\x90\x00" + os.urandom(2000)  # a Windows executable, renamed x.jpg
    cases = (("video/mp4", png_bytes()), ("image/jpeg", executable))
    for n, (declared, data) in enumerate(cases, start=1):
        status, ticket = await start_upload(api, creator, declared, len(data))
        assert status == 201 and ticket["status"] == "pending"
        assert await put_bytes(api, ticket, data) == 204
        assert _stored(settings, ticket["media_id"]) == ["full"]
        status, refused = await api.call(
            "POST", f"/api/v1/media/{ticket['media_id']}/complete", user=creator
        )
        assert status == 400 and refused["error"]["code"] == "invalid", refused
        assert _stored(settings, ticket["media_id"]) == []
        failed = (await inbox.wait_for("media:ready", n))[-1]
        assert failed["media_id"] == ticket["media_id"] and failed["status"] == "failed"
    # The same bytes declared as what they are go through.
    done = await upload(api, creator, png_bytes(), "image/png")
    assert done["kind"] == "image" and done["width"] == 32


async def test_an_upload_larger_than_declared_is_refused_and_nothing_is_kept(
    api: Api, settings: Settings
) -> None:
    creator = await api.register(role="creator")
    data = photo_with_gps()
    status, ticket = await start_upload(api, creator, "image/jpeg", len(data) - 10)
    assert status == 201
    assert await put_bytes(api, ticket, data) == 413

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit is enforced while streaming.
        yield data

    assert await put_bytes(api, ticket, chunks()) == 413
    assert _stored(settings, ticket["media_id"]) == []
    assert list((settings.media_path / ".incoming").iterdir()) == []


async def test_upload_links_are_signed_and_serve_only_their_owner_and_item(api: Api) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    data = short_mp4()
    status, ticket = await start_upload(api, creator, "video/mp4", len(data))
    tampered = {
        **ticket,
        "upload": {**ticket["upload"], "url": ticket["upload"]["url"][:-2] + "00"},
    }
    assert await put_bytes(api, tampered, data) == 403
    # A signature that is not even ASCII (a fuzzer found it answered 500) is just as wrong.
    url = ticket["upload"]["url"]
    foreign = {
        **ticket,
        "upload": {**ticket["upload"], "url": url[: url.index("sig=") + 4] + "%C3%BC"},
    }
    assert await put_bytes(api, foreign, data) == 403
    status, theirs = await start_upload(api, fan, "video/mp4", len(data))
    status, _ = await api.call("POST", f"/api/v1/media/{theirs['media_id']}/complete", user=creator)
    assert status == 404
    status, _ = await api.call("POST", f"/api/v1/media/{ticket['media_id']}/complete", user=creator)
    assert status == 409  # nothing uploaded yet


async def test_media_never_sent_can_be_deleted_and_sent_media_only_retired(
    api: Api, sockets: Sockets, settings: Settings
) -> None:
    creator, fan = await api.register(role="creator"), await api.register()
    unsent = await upload(api, creator, png_bytes(), "image/png")
    assert (await api.call("DELETE", f"/api/v1/media/{unsent['media_id']}", user=fan))[0] == 404
    assert (await api.call("DELETE", f"/api/v1/media/{unsent['media_id']}", user=creator))[0] == 204
    assert _stored(settings, unsent["media_id"]) == []

    sent_one = await upload(api, creator, photo_with_gps(), "image/jpeg")
    chat = await sockets.connect("/chat", creator)
    opened = await chat.call("conversation:open", {"participant_ids": [fan.id]})
    message = {
        "conversation_id": opened["data"]["id"],
        "client_id": "m1",
        "media": [{"media_id": sent_one["media_id"]}],
    }
    assert (await chat.call("message:send", message))["ok"]
    status, refused = await api.call(
        "DELETE", f"/api/v1/media/{sent_one['media_id']}", user=creator
    )
    assert status == 409 and "retire" in refused["error"]["details"]
    status, retired = await api.call(
        "POST", f"/api/v1/media/{sent_one['media_id']}/retire", user=creator
    )
    assert status == 200 and retired["retired"] is True
    again = await chat.call("message:send", {**message, "client_id": "m2"})
    assert again["error"]["code"] == "conflict"
    # The fan it was sent to keeps access.
    status, view = await api.call("GET", f"/api/v1/media/{sent_one['media_id']}", user=fan)
    assert status == 200 and view["media_id"] == sent_one["media_id"]
    # Someone else's media, or an external URL behind a price, cannot be sent.
    other = await upload(api, fan, png_bytes(), "image/png")
    stolen = await chat.call(
        "message:send", {**message, "client_id": "m3", "media": [{"media_id": other["media_id"]}]}
    )
    assert stolen["error"]["code"] == "not_found"
    external = await chat.call(
        "message:send",
        {
            **message,
            "client_id": "m4",
            "price_cents": 500,
            "media": [{"url": "https://cdn.example/a.jpg", "type": "image"}],
        },
    )
    assert external["error"]["code"] == "invalid"


async def test_memory_stays_flat_while_200_mib_stream_to_the_local_store(
    api: Api, server: TestServer, settings: Settings
) -> None:
    creator = await api.register(role="creator")
    size = 200 * MiB
    header = short_mp4(padding=0)
    status, ticket = await start_upload(api, creator, "video/mp4", size)
    assert status == 201, ticket
    process = psutil.Process()
    before = process.memory_info().rss
    peak = before
    block = os.urandom(MiB)

    async def body() -> AsyncIterator[bytes]:
        nonlocal peak
        yield header
        sent = len(header)
        while sent < size:
            piece = block[: min(MiB, size - sent)]
            sent += len(piece)
            peak = max(peak, process.memory_info().rss)
            yield piece

    assert await put_bytes(api, ticket, body()) == 204
    assert (settings.media_path / ticket["media_id"] / "full").stat().st_size == size
    # Client and server share this process: a buffered body would add 200 MiB or more.
    assert peak - before < 40 * MiB, (peak - before) / MiB
    status, done = await api.call(
        "POST", f"/api/v1/media/{ticket['media_id']}/complete", user=creator
    )
    assert status == 200 and done["size_bytes"] == size and done["kind"] == "video"
    assert server.app[RUNTIME].settings.media_max_bytes == size
