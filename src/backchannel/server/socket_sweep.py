"""The reconciliation sweep: sockets whose transport is gone without a disconnect event.

`handlers/base.py` registers a socket's session (live set, timers, presence, socket counts)
only if its transport is still open when the connect handler ends, and undoes it exactly once.
One window remains that no handler sees: the transport closing after the connect handler
returned but before python-socketio marked the socket connected (python-socketio then skips
the disconnect). This sweep catches that, and anything else the manager no longer holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from backchannel.handlers.base import AuthenticatedNamespace
from backchannel.server.keys import RUNTIME, SIO

log = logging.getLogger(__name__)


async def sweep_once(app: web.Application) -> int:
    """One pass over every namespace of this node; returns how many sockets it dropped."""
    swept = 0
    for handler in list(app[SIO].namespace_handlers.values()):
        if isinstance(handler, AuthenticatedNamespace):
            swept += await handler.reconcile()
    if swept:
        log.info("socket sweep dropped sockets whose transport was gone", extra={"count": swept})
        app[RUNTIME].metrics.sockets_swept.inc(swept)
    return swept


async def socket_sweep(app: web.Application) -> AsyncIterator[None]:
    """`cleanup_ctx`: sweep every `socket_sweep_seconds` while the server runs."""
    interval = app[RUNTIME].settings.socket_sweep_seconds
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)
            if stopping.is_set():
                return
            try:
                await sweep_once(app)
            except Exception as exc:
                log.warning("socket sweep failed: %s", exc)

    task = asyncio.create_task(loop(), name="socket-sweep")
    yield
    stopping.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
