"""The operator's commands (`apikey`, `ledger check`, `user`, `account erase`, `media gc`,
`push test`, `outbox list --dead`).

Each opens the database the way the server does (`reachable_database`, never creating an
embedded one), runs one domain operation on a one-connection pool, prints what it did, and
turns a refusal from the catalogue into one line on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from backchannel.errors import BackchannelError
from backchannel.persistence.database import Database, open_database
from backchannel.server.embedded import reachable_database
from backchannel.server.logs import configure_logging
from backchannel.server.settings import Settings


@asynccontextmanager
async def _operator_database(settings: Settings) -> AsyncIterator[Database]:
    async with reachable_database(settings) as dsn:
        db = await open_database(
            dsn, min_size=0, max_size=1, statement_timeout_ms=settings.db_statement_timeout_ms
        )
        try:
            yield db
        finally:
            await db.close()


def _run(command: Callable[[], Awaitable[int]]) -> int:
    configure_logging("warning")

    async def main() -> int:
        return await command()

    try:
        return asyncio.run(main())
    except BackchannelError as exc:
        print(f"backchannel: {exc.message}", file=sys.stderr)
        return 1


def run_apikey(settings: Settings, action: str, name: str | None) -> int:
    """`backchannel apikey create|list|revoke`: the key is printed once, only its hash kept."""
    from backchannel.domain import api_keys

    async def command() -> int:
        async with _operator_database(settings) as db:
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
                    used = f"{key.last_used_at:%Y-%m-%dT%H:%MZ}" if key.last_used_at else "never"
                    print(
                        f"{key.name}\t{key.key_prefix}...\t{state}\t"
                        f"created {key.created_at:%Y-%m-%d}\tlast used {used}"
                    )
            else:
                assert name is not None
                key = await api_keys.revoke_key(db, name)
                print(f"revoked API key {key.name!r}")
        return 0

    return _run(command)


def run_ledger_check(settings: Settings) -> int:
    """`backchannel ledger check`: print every check and discrepancy; 1 if there is any."""
    from backchannel.persistence import ledger_check

    async def command() -> int:
        async with _operator_database(settings) as db, db.transaction() as conn:
            # One snapshot: every check sees the same committed state.
            await conn.execute("set transaction isolation level repeatable read")
            report = await ledger_check.check(conn)
        for line in report.checked:
            print(f"checked: {line}")
        for problem in report.problems:
            print(f"DISCREPANCY: {problem}")
        print(f"{len(report.problems)} discrepancies" if report.problems else "ledger OK")
        return 1 if report.problems else 0

    return _run(command)


def run_user_role(settings: Settings, action: str, email: str, role: str) -> int:
    """`backchannel user grant|revoke EMAIL ROLE`."""
    from backchannel.domain import roles

    async def command() -> int:
        async with _operator_database(settings) as db:
            if action == "grant":
                user = await roles.grant_by_email(db, email, role)  # type: ignore[arg-type]
            else:
                user = await roles.revoke_by_email(db, email, role)  # type: ignore[arg-type]
        print(f"{user.email}\t{user.id}\t{user.role}")
        return 0

    return _run(command)


def run_account_erase(settings: Settings, email: str) -> int:
    """`backchannel account erase EMAIL`: erase now, whatever the grace period."""
    from backchannel.domain import account_rights

    async def command() -> int:
        async with _operator_database(settings) as db:
            ids, ended = await account_rights.erase_by_email(db, email)
        print(f"erased {len(ids)} profile(s): {' '.join(ids)}")
        if ended and settings.redis_url:
            await _announce_ended_sessions(settings, ended)
        return 0

    return _run(command)


async def _announce_ended_sessions(settings: Settings, session_ids: list[str]) -> None:
    """Tell the running nodes (through Redis) to end these sessions' sockets."""
    from backchannel.server.redis_clients import open_redis
    from backchannel.server.revocations import Revocations, channel_name

    assert settings.redis_url is not None
    redis = open_redis(settings.redis_url, socket_connect_timeout=5)

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

    async def command() -> int:
        async with _operator_database(settings) as db, open_store(settings) as media_store:
            report = await collect_garbage(
                db, media_store, settings.media_pending_max_age_seconds, grace_seconds
            )
        for key in report.removed:
            print(f"removed {key}")
        print(
            f"{media_store.name} store: {report.scanned} objects scanned, "
            f"{len(report.removed)} orphans removed, "
            f"{report.pending_removed} abandoned uploads removed"
        )
        return 0

    return _run(command)


def run_push_test(settings: Settings, user_id: str) -> int:
    """`backchannel push test USER_ID`: one line per device with its provider's answer."""
    import aiohttp

    from backchannel.domain.push_probe import send_test_push
    from backchannel.server.push_providers import open_for
    from backchannel.server.settings import ensure_vapid_key

    async def command() -> int:
        async with (
            _operator_database(settings) as db,
            aiohttp.ClientSession() as http,
        ):
            providers = await open_for(ensure_vapid_key(settings), http)
            try:
                answers = await send_test_push(db, providers, user_id)
            finally:
                await providers.close()
        for device, result in answers:
            status = result.status if result.status is not None else "-"
            after = f" retry after {result.retry_after:g}s" if result.retry_after else ""
            removed = " (device removed)" if result.outcome == "gone" else ""
            print(
                f"device {device.id}\t{device.platform}\t{result.outcome}\t{status}\t"
                f"{result.detail}{after}{removed}"
            )
        if not answers:
            print(f"no devices for user {user_id}", file=sys.stderr)
            return 1
        return 0 if all(result.outcome == "delivered" for _, result in answers) else 1

    return _run(command)


def run_outbox_list_dead(settings: Settings, limit: int) -> int:
    """`backchannel outbox list --dead`: one tab-separated line per dead row, newest first."""
    from backchannel.persistence import outbox

    async def command() -> int:
        async with _operator_database(settings) as db, db.connection() as conn:
            rows = await outbox.list_dead(conn, limit)
            total = await outbox.dead_count(conn)
        for row in rows:
            print(
                f"{row.id}\t{row.kind}\t{','.join(row.namespaces)}\t{row.target}\t"
                f"{row.event or '-'}\tattempts {row.attempts}\t"
                f"dead {row.dead_at:%Y-%m-%dT%H:%M:%SZ}\t{row.last_error or ''}"
            )
        print(f"{total} dead outbox rows", file=sys.stderr)
        return 0

    return _run(command)
