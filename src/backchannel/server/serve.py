"""Running the server process: uvloop, signals, and a clean exit."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

from aiohttp import web

from backchannel.errors import Unavailable
from backchannel.persistence.migrations import migrate
from backchannel.server.app import create_app
from backchannel.server.embedded import reachable_database
from backchannel.server.logs import configure_logging
from backchannel.server.settings import Settings, ensure_jwt_secret
from backchannel.server.shutdown import ShutdownBudget

log = logging.getLogger(__name__)


# The cyclic collector's youngest-generation threshold (CPython's default is 700). Objects
# still waiting on Postgres or a socket when a collection runs are promoted, and enough
# promotions trigger a full collection, which walks every live object: ~150-200 ms of CPU with
# 1,000 sockets open. At 700, a busy server promoted its in-flight work all the time; in the
# 1:1 saturation benchmark full collections took over a second of CPU in five seconds. At 5,000
# none ran, and server CPU per message fell by about a quarter. Generations 1 and 2 keep
# CPython's multipliers (10, 10), so garbage cycles left by closed sockets (~30 small objects
# each) still reach a full collection after some 500,000 net allocations.
GC_YOUNG_THRESHOLD = 5000


async def _settle_collector(app: web.Application) -> None:
    """Once started: leave start-up's objects out of every collection, and collect less often.

    Modules, settings and pools live as long as the process; `gc.freeze()` moves them to the
    permanent generation, so full collections no longer walk them (about half of what a full
    collection walked with 1,000 sockets open).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _loop_factory() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop does not build on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(settings: Settings, app: web.Application | None = None) -> int:
    """Serve until SIGINT or SIGTERM; aiohttp then runs the graceful shutdown."""
    configure_logging(settings.log_level)
    try:
        settings = ensure_jwt_secret(settings)
    except (ValueError, OSError) as exc:
        print(f"backchannel: {exc}", file=sys.stderr)
        return 2
    if app is None:
        app = create_app(settings)
    app.on_startup.append(_settle_collector)  # after every resource has opened
    log.info("serving", extra={"host": settings.host, "port": settings.port})
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            loop=_loop_factory(),
            access_log=None,
            # Open requests were already waited for by the drain, within the grace; aiohttp
            # only gets the closing share of it, so SIGTERM-to-exit stays one grace.
            shutdown_timeout=ShutdownBudget(settings.shutdown_grace_seconds).closing_seconds / 2,
            print=None,
        )
    except Unavailable as exc:
        print(f"backchannel: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.exception("start-up failed")
        print(f"backchannel: could not start: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def run_migrations(settings: Settings) -> int:
    """`backchannel migrate`: apply pending migrations and report what ran."""
    configure_logging(settings.log_level)

    async def run() -> list[str]:
        async with reachable_database(
            settings.model_copy(update={"migrate_on_start": False}), may_create=True
        ) as dsn:
            return await migrate(dsn)

    try:
        applied = asyncio.run(run())
    except Unavailable as exc:
        print(f"backchannel: {exc.message}", file=sys.stderr)
        return 1
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0
