"""Abandoned uploads go after a day; `backchannel media gc` removes objects no row owns."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from backchannel.domain import media_cleanup
from backchannel.server.cli import main
from backchannel.server.keys import RUNTIME
from backchannel.server.settings import Settings
from tests.media_support import png_bytes, put_bytes, start_upload, upload
from tests.services import RunServices
from tests.support import Api


async def _age(database_url: str, media_id: str, hours: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "update media set created_at = now() - make_interval(hours => $2) where id = $1",
            int(media_id),
            hours,
        )
    finally:
        await conn.close()


async def _pending(api: Api, user: Any) -> str:
    data = png_bytes()
    status, ticket = await start_upload(api, user, "image/png", len(data))
    assert status == 201 and await put_bytes(api, ticket, data) == 204
    return str(ticket["media_id"])


async def test_pending_uploads_older_than_a_day_are_removed_with_their_bytes(
    api: Api, server: TestServer, settings: Settings, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    stale, fresh = await _pending(api, creator), await _pending(api, creator)
    await _age(services.database_url, stale, 25)
    removed = await media_cleanup.remove_abandoned(server.app[RUNTIME])
    assert removed == 1
    assert not (settings.media_path / stale).exists()
    assert (settings.media_path / fresh / "full").exists()
    status, _ = await api.call("POST", f"/api/v1/media/{stale}/complete", user=creator)
    assert status == 404


async def test_media_gc_removes_orphans_and_reports_what_it_did(
    api: Api,
    settings: Settings,
    services: RunServices,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    creator = await api.register(role="creator")
    kept = await upload(api, creator, png_bytes(), "image/png")
    abandoned = await _pending(api, creator)
    await _age(services.database_url, abandoned, 30)
    orphan = settings.media_path / "987654" / "full"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left behind")
    stray = settings.media_path / "notes.txt"
    stray.write_text("not media")
    for name in list(os.environ):
        if name.startswith("BACKCHANNEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", services.database_url)
    monkeypatch.setenv("BACKCHANNEL_DATA_DIR", str(settings.data_dir))

    code = await asyncio.to_thread(main, ["media", "gc", "--grace-seconds", "0"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "removed 987654/full" in out and "removed notes.txt" in out
    assert "2 orphans removed, 1 abandoned uploads removed" in out
    assert not orphan.exists() and not stray.exists()
    assert not (settings.media_path / abandoned).exists()
    kept_files = sorted(p.name for p in (settings.media_path / kept["media_id"]).iterdir())
    assert kept_files == ["full", "preview", "thumbnail"]
