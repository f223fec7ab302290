"""A real server process starts, serves, and shuts down gracefully on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.processes import settings_env, start_server
from tests.services import RunServices
from tests.support import Api, Sockets

pytestmark = pytest.mark.slow


async def test_sigterm_tells_sockets_and_exits_cleanly(
    services: RunServices, tmp_path: Path
) -> None:
    node = start_server(
        settings_env(
            database_url=services.database_url,
            redis_url=None,
            redis_prefix=services.redis_prefix,
            jwt_secret=TEST_JWT_SECRET,
            data_dir=tmp_path,
        ),
        tmp_path,
    )
    sockets = Sockets(node.url)
    try:
        await node.wait_ready()
        async with aiohttp.ClientSession() as session:
            fan = await Api(node.url, session).register()
        socket = await sockets.connect("/chat", fan)
        assert await node.terminate() == 0, node.log()
        [notice] = await socket.wait_for("server:shutdown")
        assert notice == {"reason": "server shutting down", "reconnect": True}
    finally:
        await sockets.close_all()
        node.kill()


async def test_once_started_the_collector_skips_start_up_objects_and_runs_less_often() -> None:
    import gc

    from aiohttp import web

    from backchannel.server.serve import GC_YOUNG_THRESHOLD, _settle_collector

    before = gc.get_threshold()
    try:
        await _settle_collector(web.Application())
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
