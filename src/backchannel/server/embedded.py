"""The embedded Postgres a newcomer gets when no `DATABASE_URL` is set."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backchannel.persistence.database import wait_for_database
from backchannel.persistence.migrations import migrate

if TYPE_CHECKING:
    from backchannel.server.settings import Settings

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A real Postgres server run by `pgserver` in a local data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return its DSN; blocking, run it in a thread."""
        with warnings.catch_warnings():
            # pgserver asks platformdirs for XDG_RUNTIME_DIR, which containers rarely set.
            warnings.simplefilter("ignore")
            import pgserver

            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            log.info("starting embedded postgres", extra={"data_dir": str(self.data_dir)})
            self._server = pgserver.get_server(  # type: ignore[attr-defined]
                self.data_dir.resolve(), cleanup_mode="stop"
            )
        dsn: str = self._server.get_uri()
        return dsn

    def stop(self) -> None:
        """Stop the server when this process was its last user."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@asynccontextmanager
async def reachable_database(settings: Settings) -> AsyncIterator[str]:
    """The DSN of a database that answers, migrated when `migrate_on_start` says so.

    `DATABASE_URL` when set; otherwise the embedded Postgres, started here and stopped on exit.
    The server and the `migrate` and `apikey` commands all come up this way.
    """
    embedded: EmbeddedPostgres | None = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.embedded_pg_path)
        dsn = await asyncio.to_thread(embedded.start)
    try:
        await wait_for_database(dsn, settings.db_connect_timeout_seconds)
        if settings.migrate_on_start:
            await migrate(dsn)
        yield dsn
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
