"""Backchannel as `backchannel serve` runs it, plus the one event the peers also serve.

`bench:broadcast` on /chat is the plain room broadcast: the creator's socket asks for
`bench:news` to go to the creator's subscribers room through the Emitter, the path every
live event takes. Every /chat socket joins that room, as it does on the peers. Settings come
from the environment exactly as for `backchannel serve`.
"""

from __future__ import annotations

import sys
from typing import Any

from backchannel.rooms.names import Namespace, subscribers_room
from backchannel.server.app import create_app
from backchannel.server.keys import RUNTIME, SIO
from backchannel.server.serve import serve
from backchannel.server.settings import Settings, ensure_jwt_secret

CREATOR = "bench-creator"


def main() -> int:
    settings = ensure_jwt_secret(Settings())
    app = create_app(settings)
    sio, rt = app[SIO], app[RUNTIME]
    chat = sio.namespace_handlers[Namespace.CHAT.value]
    authenticated = chat.on_authenticated

    async def on_authenticated(sid: str, identity: Any, auth: Any) -> None:
        await authenticated(sid, identity, auth)
        await rt.emitter.join(Namespace.CHAT, sid, subscribers_room(CREATOR))

    chat.on_authenticated = on_authenticated

    @sio.on("bench:broadcast", namespace=Namespace.CHAT.value)  # type: ignore[misc]
    async def room_broadcast(sid: str, data: Any) -> dict[str, Any]:
        await rt.emitter.to_room(
            Namespace.CHAT, subscribers_room(CREATOR), "bench:news", data, skip_sid=sid
        )
        return {"ok": True, "data": None}

    return serve(settings, app)


if __name__ == "__main__":
    sys.exit(main())
