"""Backchannel as `backchannel serve` runs it, plus the one event the peers also serve.

`bench:broadcast` on /chat is the plain room broadcast: the creator's socket asks for
`bench:news` to go to the creator's subscribers room through the Emitter, the path every
live event takes. Every /chat socket joins that room, as it does on the peers. Settings come
from the environment exactly as for `backchannel serve`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
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

    if os.environ.get("BENCH_TRACEMALLOC"):
        _dump_allocations_on_sigusr1(Path(os.environ["BENCH_TRACEMALLOC"]))
    return serve(settings, app)


def _dump_allocations_on_sigusr1(path: Path) -> None:
    """Profiling aid: `kill -USR1 <pid>` writes the biggest live allocation sites to `path`."""
    import tracemalloc

    tracemalloc.start(8)

    def dump(*_: Any) -> None:
        snapshot = tracemalloc.take_snapshot()
        lines = []
        for stat in snapshot.statistics("traceback")[:40]:
            lines.append(f"{stat.size / 1024:10.1f} kB {stat.count:8d} blocks")
            lines += [f"    {frame}" for frame in stat.traceback.format()[-8:]]
        path.write_text("\n".join(lines))

    signal.signal(signal.SIGUSR1, dump)


if __name__ == "__main__":
    sys.exit(main())
