"""The embedded Postgres a newcomer gets when no `DATABASE_URL` is set."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

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
