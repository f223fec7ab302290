"""What a new message goes through before it is stored: the filters, then the moderation hook.

Neither runs inside a database transaction. The filters are the admin's list
(`GET/PUT /admin/filters`, `filters.apply`), read through a short per-node cache. The hook is
the platform's own moderation service (`BACKCHANNEL_MODERATION_HOOK_URL`): a signed POST with
a deadline, whose answer allows, rejects or replaces the body; when it is late or down,
`BACKCHANNEL_MODERATION_HOOK_FAILURE` decides.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import BaseModel, ValidationError

from backchannel.domain import filters, webhook_events
from backchannel.domain.auth import Identity
from backchannel.domain.filter_rules import current_rules, refuse, remember_rules
from backchannel.domain.filters import FilterRules
from backchannel.domain.roles import require_role
from backchannel.domain.signatures import SIGNATURE_HEADER, signature_header
from backchannel.errors import Forbidden, Unavailable
from backchannel.persistence import audit, content_filters, reports
from backchannel.persistence.messages import StoredMessage

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Screened:
    """A message's texts as they will be stored, and what the filters flagged."""

    body: str | None
    preview_text: str | None
    flags: tuple[str, ...] = ()


class HookAnswer(BaseModel):
    """What the moderation service answers."""

    action: str
    body: str | None = None
    reason: str | None = None


async def screen_message(
    rt: Runtime,
    sender_id: str,
    conversation_id: int | None,
    *,
    body: str | None,
    preview_text: str | None,
    media: list[dict[str, Any]],
    price_cents: int | None,
) -> Screened:
    """The filters over the body and preview, then the hook; raises when refused."""
    rules = await current_rules(rt)
    flags: list[str] = []
    texts: dict[str, str | None] = {"body": body, "preview_text": preview_text}
    for field, text in list(texts.items()):
        if not text:
            continue
        outcome = filters.apply(rules, text)
        if outcome.action == "reject":
            raise refuse(field)
        if outcome.action == "flag":
            flags.extend(outcome.matched)
        texts[field] = outcome.text
    body = texts["body"]
    if rt.settings.moderation_hook_url:
        body = await _call_hook(rt, sender_id, conversation_id, body, media, price_cents)
    return Screened(body=body, preview_text=texts["preview_text"], flags=tuple(flags))


async def _call_hook(
    rt: Runtime,
    sender_id: str,
    conversation_id: int | None,
    body: str | None,
    media: list[dict[str, Any]],
    price_cents: int | None,
) -> str | None:
    settings = rt.settings
    payload = json.dumps(
        {
            "sender_id": sender_id,
            "conversation_id": None if conversation_id is None else str(conversation_id),
            "body": body,
            "media": media,
            "price_cents": price_cents,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    if settings.moderation_hook_secret is not None:
        secret = settings.moderation_hook_secret.get_secret_value()
        headers[SIGNATURE_HEADER] = signature_header(secret, payload)
    deadline = settings.moderation_hook_timeout_ms / 1000
    started = time.perf_counter()
    outcome = "failed"
    try:
        assert rt.http is not None
        async with asyncio.timeout(deadline):
            async with rt.http.post(
                str(settings.moderation_hook_url),
                data=payload,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=deadline),
            ) as response:
                if response.status >= 300:
                    raise ValueError(f"moderation hook answered {response.status}")
                answer = HookAnswer.model_validate(await response.json(content_type=None))
        if answer.action == "allow":
            outcome = "allow"
            return body
        if answer.action == "replace":
            outcome = "replace"
            return answer.body or None
        if answer.action == "reject":
            outcome = "reject"
            raise Forbidden(
                "this message was refused by moderation",
                {"reason": answer.reason or "moderation"},
            )
        raise ValueError(f"unknown moderation action {answer.action!r}")
    except Forbidden:
        raise
    except (TimeoutError, aiohttp.ClientError, ValueError, ValidationError, AssertionError) as exc:
        log.warning("moderation hook failed: %s", exc)
        if settings.moderation_hook_failure == "reject":
            raise Unavailable(
                "moderation is unavailable; the message was not stored",
                {"reason": "moderation_unavailable"},
            ) from None
        return body
    finally:
        rt.metrics.moderation_hook_latency.labels(outcome).observe(time.perf_counter() - started)


async def flag_message(rt: Runtime, stored: StoredMessage, matched: tuple[str, ...]) -> None:
    """A `flag` rule matched a stored message: open a report on it (no reporter)."""
    async with rt.db.transaction() as conn:
        report, created = await reports.insert_report(
            conn,
            reporter_id=None,
            target_type="message",
            target_id=str(stored.id),
            reason="other",
            note="filters: " + ", ".join(matched),
            urgent=False,
        )
        recorded = created and await webhook_events.record(
            rt, conn, [webhook_events.report_created(report)]
        )
    if recorded:
        webhook_events.wake(rt)


async def get_filters(rt: Runtime, admin: Identity) -> FilterRules:
    """`GET /admin/filters`."""
    require_role(admin, "admin")
    async with rt.db.connection() as conn:
        raw = await content_filters.get_rules(conn)
    return FilterRules.model_validate(raw) if raw else FilterRules()


async def put_filters(rt: Runtime, admin: Identity, rules: FilterRules) -> FilterRules:
    """`PUT /admin/filters`: replace the whole list (this node applies it at once, the others
    within `RULES_TTL_SECONDS`)."""
    require_role(admin, "admin")
    async with rt.db.transaction() as conn:
        await content_filters.set_rules(conn, rules.model_dump(mode="json"))
        await audit.audit(
            conn,
            "filters.changed",
            actor_id=admin.user_id,
            details={"words": len(rules.words), "links": rules.links.mode},
        )
    remember_rules(rt, rules)
    return rules
