"""Running the server process: uvloop, signals, and a clean exit."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

from aiohttp import web

from backchannel.errors import BackchannelError, Unavailable
from backchannel.persistence.database import open_database
from backchannel.persistence.migrations import migrate
from backchannel.server.app import create_app
from backchannel.server.embedded import reachable_database
from backchannel.server.logs import configure_logging
from backchannel.server.settings import Settings, ensure_jwt_secret

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
            shutdown_timeout=settings.shutdown_grace_seconds,
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


def run_apikey(settings: Settings, action: str, name: str | None) -> int:
    """`backchannel apikey create|list|revoke`: the key is printed once, only its hash kept."""
    from backchannel.domain import api_keys

    configure_logging("warning")

    async def run() -> None:
        async with reachable_database(settings) as dsn:
            db = await open_database(
                dsn, min_size=0, max_size=1, statement_timeout_ms=settings.db_statement_timeout_ms
            )
            try:
                if action == "create":
                    assert name is not None
                    key, secret = await api_keys.create_key(db, name)
                    print(secret)
                    print(
                        f"created API key {key.name!r}; this is the only time it is shown",
                        file=sys.stderr,
                    )
                elif action == "list":
                    for key in await api_keys.list_keys(db):
                        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "live"
                        used = (
                            f"{key.last_used_at:%Y-%m-%dT%H:%MZ}" if key.last_used_at else "never"
                        )
                        print(
                            f"{key.name}\t{key.key_prefix}...\t{state}\t"
                            f"created {key.created_at:%Y-%m-%d}\tlast used {used}"
                        )
                else:
                    assert name is not None
                    key = await api_keys.revoke_key(db, name)
                    print(f"revoked API key {key.name!r}")
            finally:
                await db.close()

    try:
        asyncio.run(run())
    except BackchannelError as exc:
        print(f"backchannel: {exc.message}", file=sys.stderr)
        return 1
    return 0


def run_ledger_check(settings: Settings) -> int:
    """`backchannel ledger check`: print every check and discrepancy; 1 if there is any."""
    from backchannel.persistence import ledger_check

    configure_logging("warning")

    async def run() -> ledger_check.Report:
        async with reachable_database(settings) as dsn:
            db = await open_database(
                dsn, min_size=0, max_size=1, statement_timeout_ms=settings.db_statement_timeout_ms
            )
            try:
                async with db.transaction() as conn:
                    # One snapshot: every check sees the same committed state.
                    await conn.execute("set transaction isolation level repeatable read")
                    return await ledger_check.check(conn)
            finally:
                await db.close()

    report = asyncio.run(run())
    for line in report.checked:
        print(f"checked: {line}")
    for problem in report.problems:
        print(f"DISCREPANCY: {problem}")
    print(f"{len(report.problems)} discrepancies" if report.problems else "ledger OK")
    return 1 if report.problems else 0


def run_user_role(settings: Settings, action: str, email: str, role: str) -> int:
    """`backchannel user grant|revoke EMAIL ROLE`."""
    from backchannel.domain import roles

    configure_logging("warning")

    async def run() -> None:
        async with reachable_database(settings) as dsn:
            db = await open_database(
                dsn, min_size=0, max_size=1, statement_timeout_ms=settings.db_statement_timeout_ms
            )
            try:
                if action == "grant":
                    user = await roles.grant_by_email(db, email, role)  # type: ignore[arg-type]
                else:
                    user = await roles.revoke_by_email(db, email, role)  # type: ignore[arg-type]
                print(f"{user.email}\t{user.id}\t{user.role}")
            finally:
                await db.close()

    try:
        asyncio.run(run())
    except BackchannelError as exc:
        print(f"backchannel: {exc.message}", file=sys.stderr)
        return 1
    return 0


def run_account_erase(settings: Settings, email: str) -> int:
    """`backchannel account erase EMAIL`: erase now, whatever the grace period."""
    from backchannel.domain import account_rights

    configure_logging("warning")

    async def run() -> None:
        async with reachable_database(settings) as dsn:
            db = await open_database(
                dsn, min_size=0, max_size=1, statement_timeout_ms=settings.db_statement_timeout_ms
            )
            try:
                ids, ended = await account_rights.erase_by_email(db, email)
                print(f"erased {len(ids)} profile(s): {' '.join(ids)}")
            finally:
                await db.close()
        if ended and settings.redis_url:
            await _announce_ended_sessions(settings, ended)

    try:
        asyncio.run(run())
    except BackchannelError as exc:
        print(f"backchannel: {exc.message}", file=sys.stderr)
        return 1
    return 0


async def _announce_ended_sessions(settings: Settings, session_ids: list[str]) -> None:
    """Tell the running nodes (through Redis) to end these sessions' sockets."""
    from redis.asyncio import Redis

    from backchannel.server.revocations import Revocations, channel_name

    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5)

    async def nothing_here(session_ids: list[str], reason: str) -> None:
        return None

    async def nothing_to_load(seconds: float) -> list[str]:
        return []

    try:
        await Revocations(
            token_ttl_seconds=settings.access_token_ttl_seconds,
            end_sockets=nothing_here,
            load_ended=nothing_to_load,
            redis=redis,
            channel=channel_name(settings.redis_prefix),
            node_id="cli",
        ).ended(session_ids, "account_deleted")
    finally:
        await redis.aclose()


def run_media_gc(settings: Settings, grace_seconds: float) -> int:
    """`backchannel media gc`: remove abandoned uploads and objects no row owns; report."""
    from backchannel.domain.media_cleanup import collect_garbage
    from backchannel.media.backends import open_store

    configure_logging("warning")

    async def run() -> None:
        async with reachable_database(settings) as dsn, open_store(settings) as media_store:
            db = await open_database(
                dsn, min_size=0, max_size=1, statement_timeout_ms=settings.db_statement_timeout_ms
            )
            try:
                report = await collect_garbage(
                    db, media_store, settings.media_pending_max_age_seconds, grace_seconds
                )
            finally:
                await db.close()
        for key in report.removed:
            print(f"removed {key}")
        print(
            f"{media_store.name} store: {report.scanned} objects scanned, "
            f"{len(report.removed)} orphans removed, "
            f"{report.pending_removed} abandoned uploads removed"
        )

    try:
        asyncio.run(run())
    except BackchannelError as exc:
        print(f"backchannel: {exc.message}", file=sys.stderr)
        return 1
    return 0
