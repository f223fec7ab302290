"""Dependency-outage logging: one line per outage and per minute, with a count.

When Redis or Postgres stops answering, every event that touches it fails the same way: a
warning (and a traceback) per event buries the one fact an operator needs. `report` writes the
first failure of an outage at once, then at most one line per dependency per
`INTERVAL_SECONDS` counting the failures in between, and one line when the dependency is seen
answering again. Failures that are not a dependency's (a bug) keep their traceback.

One registry per process, like `logging`'s own: it holds no resource, only when it last wrote.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL_SECONDS = 60.0
# A dependency that has not failed for this long is taken to be back: the next failure starts
# a new outage (and gets its own line at once).
QUIET_SECONDS = 10.0

log = logging.getLogger("backchannel.outages")


def dependency_of(exc: BaseException) -> str | None:
    """Which dependency an exception says is unavailable (`redis`, `postgres`), if any."""
    import asyncpg
    from redis import exceptions as redis_errors

    from backchannel.errors import Unavailable
    from backchannel.rooms.emitter import PublishFailed

    if isinstance(exc, PublishFailed | redis_errors.ConnectionError | redis_errors.TimeoutError):
        return "redis"
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | asyncpg.exceptions.CannotConnectNowError,
    ):
        return "postgres"
    if isinstance(exc, Unavailable):
        return "dependency"
    return None


@dataclass
class _Outage:
    started: float
    last_failure: float
    last_logged: float
    unlogged: int = 0


class OutageLog:
    """Per-dependency failure state; `clock` is injectable for tests."""

    def __init__(
        self,
        logger: logging.Logger = log,
        *,
        interval: float = INTERVAL_SECONDS,
        quiet: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self.interval = interval
        self.quiet = quiet
        self._clock = clock
        self._outages: dict[str, _Outage] = {}

    def failed(self, dependency: str, what: str, exc: BaseException) -> None:
        """`what` failed because `dependency` is unavailable; logs only if due."""
        now = self._clock()
        outage = self._outages.get(dependency)
        if outage is not None and now - outage.last_failure > self.quiet:
            self.recovered(dependency)
            outage = None
        if outage is None:
            self._outages[dependency] = _Outage(now, now, now)
            self._log.warning(
                "%s unavailable: %s failed: %s: %s (further failures: one line a minute)",
                dependency,
                what,
                exc.__class__.__name__,
                exc,
            )
            return
        outage.last_failure = now
        outage.unlogged += 1
        if now - outage.last_logged >= self.interval:
            self._log.warning(
                "%s still unavailable after %.0fs: %d failures in the last %.0fs (latest: %s "
                "failed: %s: %s)",
                dependency,
                now - outage.started,
                outage.unlogged,
                now - outage.last_logged,
                what,
                exc.__class__.__name__,
                exc,
            )
            outage.last_logged = now
            outage.unlogged = 0

    def recovered(self, dependency: str) -> None:
        """`dependency` answered again: one line closing its outage, if one was open."""
        outage = self._outages.pop(dependency, None)
        if outage is not None:
            self._log.warning(
                "%s available again after %.1fs (%d failures not logged one by one)",
                dependency,
                outage.last_failure - outage.started,
                outage.unlogged,
            )

    def failing(self, dependency: str) -> bool:
        """Whether an outage of `dependency` is open."""
        return dependency in self._outages


OUTAGES = OutageLog()


def report(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log that `what` failed: rate-limited when a dependency is down, else with traceback."""
    dependency = dependency_of(exc)
    if dependency is None:
        logger.warning("%s failed", what, exc_info=exc)
    else:
        OUTAGES.failed(dependency, what, exc)
