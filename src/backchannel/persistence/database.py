"""The asyncpg pool, and the unit-of-work helpers that keep asyncpg's errors inside persistence."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg

from backchannel.errors import Conflict, Internal, Unavailable
from backchannel.outage_log import OUTAGES

log = logging.getLogger(__name__)

from asyncpg import Connection as Connection  # noqa: E402 - re-exported for callers


class ConnectionLost(Exception):
    """The connection died under an operation before it was sent (see `_acquire`)."""


# Errors that mean "the database is not there right now", as opposed to a bug or bad data.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionLost,
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    # "cannot switch to state ...; another operation is in progress": the protocol state
    # machine after Postgres went away mid-statement (a chaos run saw it as it stopped).
    asyncpg.InternalClientError,
)

# Where a unit of work was when it failed.
_WORKING, _COMMITTING, _DONE = "working", "committing", "done"


def _closed(conn: Connection) -> bool:
    """Whether the connection is gone (the pool detaches a lost one from its proxy)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


def _log_outage(what: str, exc: BaseException) -> None:
    OUTAGES.failed("postgres", what, exc)


class Database:
    """A pool plus units of work; callers never see asyncpg's exception types."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float | None = None) -> None:
        """`acquire_timeout`: longest wait for a free connection (then `Unavailable`)."""
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.waiting = 0  # tasks waiting for a free connection (`backchannel_db_pool_waiting`)
        self.acquire_timeouts = 0  # waits that gave up (tests and logs read it)
        # How a failure that means "Postgres is not there" is logged: once per outage and
        # per minute (`outage_log.py`), not once per request.
        self.on_outage: Callable[[str, BaseException], None] = _log_outage

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Connection]:
        """A pooled connection, counting the wait (asyncpg has no public count of waiters).

        The wait is bounded: with every connection busy (a paid broadcast's row locks, a slow
        disk), a unit of work answers `unavailable` before it has started, rather than queue
        behind the pool for as long as that lasts. A failure to give the connection back
        happens after the work (and its commit) is done: it is logged, never raised, so it is
        never mistaken for work that did not happen.
        """
        self.waiting += 1
        try:
            conn = await self.pool.acquire(timeout=self.acquire_timeout)
        except TimeoutError:
            self.acquire_timeouts += 1
            raise Unavailable("no database connection free") from None
        finally:
            self.waiting -= 1
        try:
            yield conn
        except (asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            # A backend killed under load (a restart, a failover, `pg_terminate_backend`)
            # also surfaces as "cannot switch to state …; another operation is in progress"
            # or "the underlying connection is closed" on the next call or the commit: both
            # refuse before anything is sent, so nothing of this unit of work was committed.
            # On an open connection these errors are bugs, and stay errors.
            if _closed(conn):
                raise ConnectionLost(str(exc)) from exc
            raise
        finally:
            try:
                await self.pool.release(conn)
            except Exception as exc:
                # Resetting a connection that died after the unit of work finished (its
                # commit is done): asyncpg has already terminated it (terminating it again
                # raises) and the pool makes a new one. The unit of work's own outcome stands;
                # failing it here would answer `unavailable` or `internal` for something that
                # was stored.
                log.info("a dead connection was dropped on release: %s", exc.__class__.__name__)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """One connection and one transaction; commits when the block ends without error."""
        async with self._unit(transactional=True) as conn:
            yield conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """One connection without a transaction: single reads, or single-statement writes."""
        async with self._unit(transactional=False) as conn:
            yield conn

    @asynccontextmanager
    async def _unit(self, *, transactional: bool) -> AsyncIterator[Connection]:
        """asyncpg's errors become the catalogue's, by when they happened.

        `Unavailable` promises nothing was stored, so it is raised only before a commit was
        attempted. A connection lost during COMMIT leaves the outcome unknown: `Internal`,
        saying so (a retry with the same `client_id` answers what was stored). A connection
        lost after the work completed (returning it to the pool) is logged, not raised.
        """
        stage = _WORKING
        broken = False
        try:
            async with self._acquire() as conn:
                try:
                    if transactional:
                        async with conn.transaction():
                            yield conn
                            # A connection known closed sends no COMMIT: nothing is stored.
                            stage = _WORKING if _closed(conn) else _COMMITTING
                    else:
                        yield conn
                except Exception:
                    broken = _closed(conn)
                    raise
                stage = _DONE
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("already exists") from exc
        except Exception as exc:
            # asyncpg reports a broken connection in many ways: its own errors, or, when
            # the rollback of a block that failed finds it closed, an InterfaceError.
            if not isinstance(exc, _UNAVAILABLE_ERRORS) and not (
                broken and isinstance(exc, asyncpg.InterfaceError)
            ):
                raise
            if stage == _DONE:
                self.on_outage("connection lost after the work was done (not an error)", exc)
                return
            self.on_outage("unit of work" if stage == _WORKING else "commit", exc)
            if stage == _COMMITTING:
                raise Internal(
                    "the database connection broke during commit: the change may be stored; "
                    "retry with the same client_id"
                ) from exc
            raise Unavailable() from exc
        if OUTAGES.failing("postgres"):
            OUTAGES.recovered("postgres")

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when a trivial query answers within the timeout."""
        try:
            async with asyncio.timeout(timeout), self._acquire() as conn:
                await conn.fetchval("select 1")
            return True
        except Exception:
            return False

    async def close(self, timeout: float = 10.0) -> None:
        """Close the pool, waiting at most `timeout` for connections in use, then cut them."""
        try:
            await asyncio.wait_for(self.pool.close(), timeout=timeout)
        except TimeoutError:
            self.pool.terminate()


async def wait_for_database(dsn: str, timeout: float) -> None:
    """Retry connecting until the database answers or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(dsn, timeout=min(5.0, timeout))
            await conn.close()
            return
        except Exception as exc:
            last_error = exc
            log.info("waiting for the database: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise Unavailable(
        f"database not reachable after {timeout:.0f}s: {last_error.__class__.__name__}: "
        f"{last_error}"
    )


async def open_database(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    statement_timeout_ms: int,
    warm_up: Callable[[Connection], Awaitable[None]] | None = None,
    acquire_timeout: float | None = None,
) -> Database:
    """Open the pool with the per-statement timeout set on every connection.

    `warm_up(conn)` runs on each new connection before first use (preparing hot statements);
    `acquire_timeout` bounds every wait for a free connection.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min(min_size, max_size),
        max_size=max_size,
        server_settings={"statement_timeout": str(statement_timeout_ms)},
        command_timeout=statement_timeout_ms / 1000 + 1,
        reset=_keep_session,
        init=warm_up,
    )
    return Database(pool, acquire_timeout=acquire_timeout)


async def _keep_session(conn: Connection) -> None:
    """Release without asyncpg's `RESET ALL; UNLISTEN *; CLOSE ALL; ...` round trip.

    Nothing run on a pooled connection sets session state (no SET, LISTEN, cursors or session
    advisory locks; migrations use their own connection), and asyncpg still rolls back a
    transaction left open before calling this. It saves one round trip per unit of work: two
    of the eight a `message:send` made.
    """
