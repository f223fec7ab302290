"""The start-up self-check of the fast paths, and their fallback to the libraries' own paths.

Each fast path reaches into private names of python-engineio, python-socketio, aiohttp or
asyncio (docs/internals.md). Before the app is built, `select` checks every name each one uses
(it exists, a method's parameters are the ones it is called with or overrides, the class it
swaps still accepts the swap), then runs a loopback probe through the chosen paths
(`server.fast_path_probe`: connect, ping/pong, an ack, a broadcast to two sockets, a
disconnect, over websockets and long-polling). A path whose check or probe fails is switched
off for the process, with one warning line naming the library, its version and what differed,
and `backchannel_fast_path_enabled{path=...}` says which are on. With any subset off the
server takes python-socketio's and python-engineio's own paths there, so it stays correct.

The verdict is computed once per process (per combination of the settings that choose paths)
and runs in a thread of its own, so `create_app` can call it with or without a running loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from backchannel.server import fast_path_probe
from backchannel.server.fast_path_checks import (
    BROADCAST_FRAMES,
    ENGINE_WEBSOCKET,
    LEAN_QUEUE,
    LIBRARY_OF,
    PATHS,
    POLLING,
    ROOM_INDEX,
    Mismatch,
    check_cluster,
    library_version,
    shape_mismatch,
)
from backchannel.server.settings import Settings

__all__ = [
    "PATHS",
    "FastPathCollector",
    "FastPaths",
    "Mismatch",
    "evaluate",
    "forget",
    "library_version",
    "requested",
    "select",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastPaths:
    """Which fast paths this process uses; `off` holds why each failed one was switched off."""

    enabled: Mapping[str, bool]
    off: Mapping[str, Mismatch] = field(default_factory=dict)

    def __getitem__(self, path: str) -> bool:
        return self.enabled[path]


# -- the verdict ------------------------------------------------------------------------------


def requested(settings: Settings) -> dict[str, bool]:
    """The fast paths the settings ask for (before any check)."""
    return {
        ENGINE_WEBSOCKET: settings.lean_websockets and not settings.ws_compression,
        BROADCAST_FRAMES: settings.fast_fanout,
        ROOM_INDEX: True,
        POLLING: True,
        LEAN_QUEUE: True,
    }


def evaluate(wanted: Mapping[str, bool], settings: Settings) -> FastPaths:
    """Check, then probe, the `wanted` fast paths; the ones that fail are switched off."""
    off: dict[str, Mismatch] = {}
    for path in PATHS:
        if wanted.get(path):
            mismatch = shape_mismatch(path)
            if mismatch is not None:
                off[path] = mismatch
    suspects = [path for path in PATHS if wanted.get(path) and path not in off]
    failure = _probe(settings, suspects) if suspects else None
    if failure is not None:
        baseline = _probe(settings, [])
        if baseline is not None:
            # The libraries' own paths fail too: the probe cannot run here (no loopback, a
            # starved machine), which says nothing about the fast paths. Their shapes passed.
            log.warning(
                "fast path loopback probe could not run (%s); the fast paths whose names "
                "matched stay on",
                baseline,
            )
            suspects = []
        # Find which path it was: each alone, over the library's path everywhere else.
        for path in suspects:
            alone = _probe(settings, [path])
            if alone is not None:
                off[path] = Mismatch(LIBRARY_OF[path], f"loopback probe: {alone}")
        if suspects and not any(path in off for path in suspects):  # only together
            for path in suspects:
                off[path] = Mismatch(
                    LIBRARY_OF[path], f"loopback probe with the other fast paths: {failure}"
                )
    enabled = {path: bool(wanted.get(path)) and path not in off for path in PATHS}
    for path, mismatch in off.items():
        log.warning(mismatch.line(path))
    return FastPaths(enabled=enabled, off=off)


_verdicts: dict[tuple[tuple[str, bool], ...], FastPaths] = {}
_lock = threading.Lock()


def select(settings: Settings) -> FastPaths:
    """This process's fast paths for these settings: checked and probed once, then reused."""
    if settings.redis_url:
        check_cluster()
    wanted = requested(settings)
    key = tuple(sorted(wanted.items()))
    with _lock:
        verdict = _verdicts.get(key)
        if verdict is None:
            verdict = _verdicts[key] = evaluate(wanted, settings)
    return verdict


def forget() -> None:
    """Drop the remembered verdicts, so the next `select` checks again (tests)."""
    with _lock:
        _verdicts.clear()


def _probe(settings: Settings, paths: Iterable[str]) -> str | None:
    """The loopback probe with exactly `paths` on: None if it went as expected."""
    chosen = set(paths)
    return _run_isolated(fast_path_probe.probe(settings, {p: p in chosen for p in PATHS}))


def _run_isolated(coro: Coroutine[Any, Any, str | None]) -> str | None:
    """Run the probe `coro` on a fresh loop in its own thread (the same loop kind as ours)."""
    factory = _loop_factory()
    outcome: list[str | None] = []

    def run() -> None:
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                outcome.append(runner.run(coro))
        except BaseException as exc:  # the probe's own crash is a probe failure
            outcome.append(f"crashed: {type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, name="fast-path-probe", daemon=True)
    thread.start()
    thread.join()
    return outcome[0] if outcome else "did not finish"


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when the caller runs it or runs no loop yet (`backchannel serve`), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop does not build on Windows
        return asyncio.new_event_loop
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return uvloop.new_event_loop
    return uvloop.new_event_loop if isinstance(running, uvloop.Loop) else asyncio.new_event_loop


class FastPathCollector:
    """`backchannel_fast_path_enabled{path}`: 1 where the fast path is on, 0 where it is off."""

    def __init__(self, paths: FastPaths) -> None:
        self._paths = paths

    def collect(self) -> Iterable[Metric]:
        """One sample per fast path."""
        gauge = GaugeMetricFamily(
            "backchannel_fast_path_enabled",
            "1 when a fast path passed its start-up self-check and is used, else 0",
            labels=["path"],
        )
        for path in PATHS:
            gauge.add_metric([path], 1.0 if self._paths.enabled[path] else 0.0)
        yield gauge
