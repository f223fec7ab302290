"""Sending queued mail after commit, with retries, so a slow mail server never holds a request.

Rows of `outgoing_email` are claimed with a lease (`for update skip locked`), so several nodes
share the queue and a node that dies mid-send leaves its messages due again. Without
`BACKCHANNEL_SMTP_URL` (dev mode) a message is written to the log instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from email.message import EmailMessage
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import aiosmtplib

from backchannel.persistence import email_codes as queue

if TYPE_CHECKING:
    from backchannel.persistence.database import Database
    from backchannel.server.settings import Settings

log = logging.getLogger(__name__)

_LEASE_SECONDS = 60.0
_POLL_SECONDS = 5.0
_SEND_TIMEOUT_SECONDS = 20.0


def _backoff(attempts: int) -> float:
    return float(min(2 ** min(attempts, 8), 120))


class Mailer:
    """The queue's sender: wake it after a commit that queued mail."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Mail was queued (committed): send it now."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current round and stop."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Send what is due, then sleep until woken or the next retry falls due."""
        while not self._stopping:
            self._wake.clear()
            wait = _POLL_SECONDS
            try:
                await self.send_due()
                async with self._db.connection() as conn:
                    due = await queue.seconds_until_next(conn)
                if due is not None:
                    wait = min(max(due, 0.05), _POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("mail queue round failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def send_due(self) -> int:
        """Send every due message once; returns how many were sent."""
        sent = 0
        while not self._stopping:
            async with self._db.transaction() as conn:
                batch = await queue.claim_due(conn, 10, _LEASE_SECONDS)
            if not batch:
                return sent
            for mail in batch:
                try:
                    await self._deliver(mail)
                except Exception as exc:
                    retry = _backoff(mail.attempts)
                    log.warning("mail to a recipient failed, retry in %.0fs: %s", retry, exc)
                    error = f"{type(exc).__name__}: {exc}"
                    async with self._db.transaction() as conn:
                        await queue.mark_failed(conn, mail.id, error, retry)
                    continue
                async with self._db.transaction() as conn:
                    await queue.mark_sent(conn, mail.id)
                sent += 1
        return sent

    async def _deliver(self, mail: queue.Mail) -> None:
        url = self._settings.smtp_url
        if url is None:
            log.warning(
                "no BACKCHANNEL_SMTP_URL: mail to %s not sent, logged instead: %s | %s",
                mail.to_address,
                mail.subject,
                mail.body,
            )
            return
        message = EmailMessage()
        message["From"] = self._settings.email_from
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        parsed = urlparse(url)
        implicit_tls = parsed.scheme == "smtps"
        await aiosmtplib.send(
            message,
            hostname=parsed.hostname or "localhost",
            port=parsed.port or (465 if implicit_tls else 25),
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            use_tls=implicit_tls,
            timeout=_SEND_TIMEOUT_SECONDS,
        )
