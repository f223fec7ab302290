"""One log line per dependency outage, not one per request that met it.

While Postgres (or Redis) is down every request fails the same way; a warning each would
write thousands of identical lines a minute and bury everything else. An `OutageLog` warns
when an outage starts, then at most once per `every` seconds with how many failures it saw
meanwhile, and once when it ends (if it hid anything).
"""

from __future__ import annotations

import logging
import time


class OutageLog:
    """Rate-limited warnings about one dependency (`what`) being unavailable."""

    def __init__(self, logger: logging.Logger, what: str, every: float = 60.0) -> None:
        self._log = logger
        self.what = what
        self.every = every
        self.started: float | None = None
        self._reported_at = 0.0
        self._failures = 0
        self._unreported = 0

    @property
    def active(self) -> bool:
        """Whether the dependency has failed since it last worked."""
        return self.started is not None

    def failed(self, reason: str, exc: BaseException | None = None) -> None:
        """A request met the outage; `exc`'s traceback goes with the first line only."""
        now = time.monotonic()
        self._failures += 1
        if self.started is None:
            self.started = self._reported_at = now
            self._unreported = 0
            self._log.warning("%s unavailable: %s", self.what, reason, exc_info=exc)
        elif now - self._reported_at >= self.every:
            self._log.warning(
                "%s still unavailable after %.0fs: %d failures in the last %.0fs (last: %s)",
                self.what,
                now - self.started,
                self._unreported + 1,
                now - self._reported_at,
                reason,
            )
            self._reported_at = now
            self._unreported = 0
        else:
            self._unreported += 1

    def succeeded(self) -> None:
        """A request worked: the outage, if there was one, is over."""
        if self.started is None:
            return
        if self._failures > 1:
            self._log.warning(
                "%s available again after %.1fs (%d failures)",
                self.what,
                time.monotonic() - self.started,
                self._failures,
            )
        self.started = None
        self._failures = 0
        self._unreported = 0
