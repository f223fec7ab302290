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
        _dump_allocations_on_sigusr1(Path(os.environ["BENCH_TRACEMALLOC"]), sio)
    profile_to = os.environ.get("BENCH_PROFILE")
    if not profile_to:
        return serve(settings, app)
    # Profiling aid: cProfile of the whole process, written to <BENCH_PROFILE>.<pid> at exit.
    # Timed in CPU seconds of the thread, not wall time: on a shared machine the wall clock
    # bills other processes' time slices to whatever function was running.
    import cProfile
    import time

    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        return serve(settings, app)
    finally:
        profiler.disable()
        profiler.dump_stats(f"{profile_to}.{os.getpid()}")


def _dump_allocations_on_sigusr1(path: Path, sio: Any) -> None:
    """Profiling aid: the first `kill -USR1 <pid>` takes a baseline; each later one writes the
    allocation sites that grew since, biggest first, in bytes per open socket, to `path`."""
    import gc
    import tracemalloc

    tracemalloc.start(12)
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    baseline: list[tracemalloc.Snapshot] = []

    def dump(*_: Any) -> None:
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(ignore)
        if not baseline:
            baseline.append(snapshot)
            return
        sockets = max(1, len(sio.eio.sockets))
        stats = snapshot.compare_to(baseline[0], "traceback")
        total = sum(stat.size_diff for stat in stats)
        lines = [f"{total / sockets:.0f} bytes per socket over {sockets} sockets, by site:"]
        for stat in stats[:60]:
            lines.append(
                f"{stat.size_diff / sockets:8.0f} B/socket {stat.count_diff / sockets:6.2f} blocks"
            )
            lines += [f"    {line}" for line in stat.traceback.format(8, most_recent_first=True)]
        path.write_text("\n".join(lines))

    signal.signal(signal.SIGUSR1, dump)


if __name__ == "__main__":
    sys.exit(main())
