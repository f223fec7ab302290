"""What every namespace answers about its own session: `auth:refresh` on a live socket.

A socket's access token expires; rather than reconnecting, the client sends a fresh token of
the same user (from `POST /auth/refresh` or its identity provider). 30 s before expiry the
server sends `session:expiring {expires_at}` as the cue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

from backchannel.domain.auth import Identity, authenticate
from backchannel.domain.event_models import (
    ErrorObject,
    RefreshAck,
    ServerResync,
    ServerShutdown,
    SessionEnded,
    SessionExpiring,
)
from backchannel.errors import Forbidden

if TYPE_CHECKING:
    from backchannel.handlers.base import EventContext
    from backchannel.server.runtime import Runtime

EXPIRING_NOTICE_SECONDS = 30.0


class RefreshToken(BaseModel):
    """`auth:refresh`: a fresh access token of the socket's user."""

    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, StringConstraints(min_length=1, max_length=8192)]


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _mark(handler: Any) -> Any:
    # `base.event` would import base from here; the marker is the same attribute.
    handler.__backchannel_event__ = ("auth:refresh", RefreshToken, RefreshAck)
    return handler


# What the server may send on every namespace, event → payload model.
COMMON_SERVER_EVENTS: dict[str, type[BaseModel]] = {
    "session:expiring": SessionExpiring,
    "session:expired": ErrorObject,
    "session:ended": SessionEnded,
    "server:resync": ServerResync,
    "server:shutdown": ServerShutdown,
}


class SessionEvents:
    """Mixed into every namespace: refresh the socket's token without reconnecting."""

    rt: Runtime

    async def replace_identity(self, sid: str, identity: Identity) -> None:
        """Provided by the namespace base."""
        raise NotImplementedError

    def expiring_notice(self, identity: Identity) -> dict[str, str]:
        """`session:expiring`'s payload."""
        return SessionExpiring(expires_at=_iso(identity.expires_at)).model_dump()

    @_mark
    async def refresh_token(self, ctx: EventContext, args: RefreshToken) -> RefreshAck:
        """`auth:refresh {token}` → `{expires_at}`; another user's token is `forbidden`."""
        identity = await authenticate(self.rt, args.token)
        if identity.user_id != ctx.user_id:
            raise Forbidden("that token belongs to another user")
        await self.replace_identity(ctx.sid, identity)
        return RefreshAck(expires_at=_iso(identity.expires_at))
