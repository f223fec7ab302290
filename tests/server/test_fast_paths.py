"""The fast paths' start-up self-check: each switched off on its own when its library differs.

Every test forces one fast path's mismatch the way a library release would (a renamed
parameter of a private method the fast path overrides, or a handover that no longer works so
the loopback probe fails), builds a real node, and shows: the one warning line naming the
library and its version, `backchannel_fast_path_enabled{path}` at 0 (the others at 1), and the
node still serving on the library's own path - real python-socketio clients connect over
websocket and long-polling, a chat message is acked and reaches the fan's two sockets, and
the disconnects leave no socket behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import socketio
from engineio.async_server import AsyncServer as EngineAsyncServer
from engineio.async_socket import AsyncSocket
from socketio import async_pubsub_manager

from backchannel.rooms.fanout import FanoutMixin
from backchannel.server import (
    engine_sockets,
    fast_path_checks,
    fast_path_probe,
    fast_paths,
    realtime,
)
from backchannel.server.engine_sockets import LeanSocket
from backchannel.server.keys import SIO
from backchannel.server.settings import Settings
from tests.chat_support import Node, node, open_dm, sent
from tests.nodes import eventually
from tests.server.test_metrics import scrape, value
from tests.support import DEFAULT_TIMEOUT, Socket, User

NEW = ("message:new",)


@pytest.fixture(autouse=True)
def _fresh_verdicts() -> Iterator[None]:
    """Each test checks again, and leaves no verdict of its patched libraries behind."""
    fast_paths.forget()
    yield
    fast_paths.forget()


async def _polling_socket(node_: Node, user: User) -> Socket:
    """A python-socketio client that stays on long-polling (no websocket upgrade)."""
    client = socketio.AsyncClient(reconnection=False)
    node_.sockets._clients.append(client)
    socket_ = Socket(client, "/chat")
    for event in NEW:
        socket_.record(event)
    await client.connect(
        node_.sockets.base_url,
        namespaces=["/chat"],
        auth={"token": user.access_token},
        transports=["polling"],
        wait_timeout=DEFAULT_TIMEOUT,
    )
    return socket_


async def _serves_correctly(node_: Node) -> None:
    """Connect, a chat send and its ack, a delivery to two sockets, disconnects."""
    creator = await node_.api.register("creator")
    fan = await node_.api.register()
    conversation_id = await open_dm(node_.sockets, creator, fan)
    sender = await node_.sockets.connect("/chat", creator)
    phone = await node_.sockets.connect("/chat", fan, events=NEW)
    laptop = await _polling_socket(node_, fan)
    samples = await scrape(node_.api)
    assert value(samples, "backchannel_socket_connections", namespace="/chat") == 3

    ack = await sender.call(
        "message:send", {"conversation_id": conversation_id, "client_id": "c-1", "body": "hi"}
    )
    message = sent(ack)
    assert message["seq"] == 1 and message["body"] == "hi"
    for socket_ in (phone, laptop):
        assert await socket_.wait_for("message:new") == [message]

    for socket_ in (phone, laptop, sender):
        await socket_.disconnect()

    async def all_gone() -> bool:
        samples = await scrape(node_.api)
        return value(samples, "backchannel_socket_connections", namespace="/chat") == 0

    await eventually(all_gone, what="every socket disconnected")
    sio = node_.server.app[SIO]
    await eventually(lambda: not sio.eio.sockets, what="no Engine.IO session left")
    assert not [room for room, sids in sio.manager.rooms.get("/chat", {}).items() if sids]


def _gauges(samples: dict[tuple[str, frozenset[Any]], float]) -> dict[str, float]:
    return {
        path: value(samples, "backchannel_fast_path_enabled", path=path)
        for path in fast_paths.PATHS
    }


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == fast_paths.__name__ and r.levelno == logging.WARNING
    ]


# -- forcing each mismatch ----------------------------------------------------------------


def _break_websocket_handover(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp's request handler without `_message_tail`: the handover fails in the probe."""

    def detach(protocol: Any, transport: Any, conn: Any) -> bytes:
        raise AttributeError("'RequestHandler' object has no attribute '_message_tail'")

    monkeypatch.setattr(engine_sockets, "_detach", detach)


def _rename_handle_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-engineio's `_handle_connect(env, ...)`: `EngineServer`'s override no longer fits."""
    library = EngineAsyncServer._handle_connect

    async def renamed(self: Any, env: Any, transport: str, jsonp_index: Any = None) -> Any:
        return await library(self, env, transport, jsonp_index)

    monkeypatch.setattr(EngineAsyncServer, "_handle_connect", renamed)


def _rename_handle_event_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-socketio's `_handle_event_internal` with a renamed parameter (still working)."""
    library = socketio.AsyncServer._handle_event_internal

    async def renamed(
        self: Any, server: Any, sid: str, eio_sid: str, data: Any, ns: str, id: Any
    ) -> Any:
        return await library(self, server, sid, eio_sid, data, ns, id)

    monkeypatch.setattr(socketio.AsyncServer, "_handle_event_internal", renamed)


def _rename_basic_disconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-socketio's `basic_disconnect(sid, ns)`: the room index no longer overrides it."""
    library = socketio.AsyncManager.basic_disconnect

    def renamed(self: Any, sid: str, ns: str, **kwargs: Any) -> None:
        library(self, sid, ns, **kwargs)

    monkeypatch.setattr(socketio.AsyncManager, "basic_disconnect", renamed)


def _rename_make_response(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-engineio's `_make_response(response, environ)`, as a release might rename it."""
    library = EngineAsyncServer._make_response

    async def renamed(self: Any, response: Any, environ: Any) -> Any:
        return await library(self, response, environ)

    monkeypatch.setattr(EngineAsyncServer, "_make_response", renamed)


def _break_lean_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio.Queue internals LeanQueue relies on gone: it cannot even be built."""

    def init(self: Any) -> None:
        raise AttributeError("'Queue' object has no attribute '_getters'")

    monkeypatch.setattr(realtime.LeanQueue, "__init__", init)


def _assert_engine_websocket_off(node_: Node) -> None:
    sio = node_.server.app[SIO]
    assert not isinstance(sio.eio, engine_sockets.EngineServer)


def _assert_broadcast_frames_off(node_: Node) -> None:
    sio = node_.server.app[SIO]
    assert not sio.manager.fast_fanout
    assert not isinstance(sio, realtime.FanoutServer)


def _assert_room_index_off(node_: Node) -> None:
    assert node_.server.app[SIO].manager.room_index is False


def _assert_polling_off(node_: Node) -> None:
    assert node_.server.app[SIO].eio.own_polling is False


def _assert_lean_queue_off(node_: Node) -> None:
    queue_class = node_.server.app[SIO].eio.create_queue
    assert not issubclass(queue_class, realtime.LeanQueue)
    assert issubclass(queue_class, realtime.CappedQueue)  # the byte cap stays on


MISMATCHES: dict[
    str, tuple[Callable[[pytest.MonkeyPatch], None], str, str, Callable[[Node], None]]
] = {
    # path: (force it, the library named, what the line says, how the node shows it is off)
    "engine_websocket": (
        _rename_handle_connect,
        "python-engineio",
        "_handle_connect",
        _assert_engine_websocket_off,
    ),
    "broadcast_frames": (
        _rename_handle_event_internal,
        "python-socketio",
        "_handle_event_internal",
        _assert_broadcast_frames_off,
    ),
    "room_index": (
        _rename_basic_disconnect,
        "python-socketio",
        "basic_disconnect",
        _assert_room_index_off,
    ),
    "polling": (_rename_make_response, "python-engineio", "_make_response", _assert_polling_off),
    "lean_queue": (_break_lean_queue, "asyncio", "_getters", _assert_lean_queue_off),
}


@pytest.mark.parametrize("path", list(MISMATCHES))
async def test_a_fast_path_whose_library_differs_is_switched_off_and_the_node_still_serves(
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    force, library, detail, assert_off = MISMATCHES[path]
    force(monkeypatch)
    caplog.set_level(logging.WARNING, logger=fast_paths.__name__)
    before = FanoutMixin.fast_writes
    async with node(settings) as node_:
        lines = _warnings(caplog)
        assert len(lines) == 1, lines
        version = fast_paths.library_version(library)
        assert lines[0].startswith(f"fast path {path} switched off: {library} {version}: ")
        assert detail in lines[0] and lines[0].endswith("using the library's own path")

        gauges = _gauges(await scrape(node_.api))
        assert gauges == {p: 0.0 if p == path else 1.0 for p in fast_paths.PATHS}
        assert_off(node_)
        await _serves_correctly(node_)
    if path == "broadcast_frames":
        assert FanoutMixin.fast_writes == before  # nothing took the write-once path
    else:  # over python-engineio's websockets too, when only the handover is off
        assert FanoutMixin.fast_writes > before


async def test_a_websocket_handover_that_fails_its_probe_falls_back_to_aiohttps_websockets(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_websocket_handover(monkeypatch)
    caplog.set_level(logging.WARNING, logger=fast_paths.__name__)
    async with node(settings) as node_:
        lines = _warnings(caplog)
        assert len(lines) == 1, lines
        assert lines[0].startswith("fast path engine_websocket switched off: python-engineio ")
        assert "loopback probe: " in lines[0]
        assert _gauges(await scrape(node_.api))["engine_websocket"] == 0.0
        _assert_engine_websocket_off(node_)
        await _serves_correctly(node_)


async def test_on_the_pinned_versions_every_fast_path_is_on(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=fast_paths.__name__)
    async with node(settings) as node_:
        assert _warnings(caplog) == []
        assert _gauges(await scrape(node_.api)) == dict.fromkeys(fast_paths.PATHS, 1.0)
        sio = node_.server.app[SIO]
        assert isinstance(sio.eio, engine_sockets.EngineServer)
        assert sio.manager.fast_fanout and sio.manager.room_index and sio.eio.own_polling
        before = FanoutMixin.fast_writes
        await _serves_correctly(node_)
        assert FanoutMixin.fast_writes > before


async def test_fast_paths_the_settings_turn_off_are_neither_probed_nor_reported_on(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=fast_paths.__name__)
    async with node(settings, lean_websockets=False, fast_fanout=False) as node_:
        assert _warnings(caplog) == []
        gauges = _gauges(await scrape(node_.api))
        assert gauges["engine_websocket"] == gauges["broadcast_frames"] == 0.0
        assert gauges["room_index"] == gauges["polling"] == gauges["lean_queue"] == 1.0


async def test_the_self_check_runs_once_per_process_and_quickly(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    verdict = fast_paths.select(settings)
    took = loop.time() - started
    assert all(verdict.enabled.values()) and not verdict.off
    assert fast_paths.select(settings) is verdict  # remembered: a second app pays nothing
    assert took < 2.0  # ~0.15-0.3 s; the bound leaves room for a loaded machine


def test_a_library_method_that_gained_a_required_parameter_is_a_mismatch() -> None:
    class Library:
        def send(self, pkt: Any, urgent: bool) -> None: ...

        def receive(self, pkt: Any, timeout: float = 1.0) -> None: ...

        def passthrough(self, *args: Any, **kwargs: Any) -> None: ...

    assert fast_path_checks.method_problem(Library, "send", ("pkt",)) == (
        "Library.send has a new required parameter 'urgent'"
    )
    assert fast_path_checks.method_problem(Library, "receive", ("pkt",)) is None
    assert fast_path_checks.method_problem(Library, "passthrough", ("pkt",)) is None
    assert fast_path_checks.method_problem(Library, "gone", ()) == "Library.gone is missing"
    assert "is not Library.receive('packet',)" in (
        fast_path_checks.method_problem(Library, "receive", ("packet",)) or ""
    )


def test_an_engineio_socket_that_can_no_longer_be_swapped_is_a_mismatch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fast_path_checks.shape_mismatch("engine_websocket") is None

    class Slotted(AsyncSocket):  # type: ignore[misc]
        __slots__ = ("extra",)

    monkeypatch.setattr(fast_path_checks, "AsyncSocket", Slotted)
    mismatch = fast_path_checks.shape_mismatch("engine_websocket")
    assert mismatch is not None and mismatch.library == "python-engineio"
    assert "cannot be switched to LeanSocket" in mismatch.what
    assert issubclass(LeanSocket, AsyncSocket)


def test_backchannel_serve_probes_on_uvloop_before_its_loop_runs(settings: Settings) -> None:
    import uvloop

    # `backchannel serve` builds the app before uvloop runs: the probe runs on uvloop too,
    # whose transports the websocket handover switches protocols on.
    assert fast_paths._loop_factory() is uvloop.new_event_loop
    verdict = fast_paths.evaluate(fast_paths.requested(settings), settings)
    assert all(verdict.enabled.values()) and not verdict.off


def test_a_probe_that_cannot_run_at_all_leaves_the_checked_fast_paths_on(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_loopback(probe: Any) -> None:
        raise OSError("[Errno 99] Cannot assign requested address")

    # Even the libraries' own paths fail: that says nothing about the fast paths.
    monkeypatch.setattr(fast_path_probe, "_run", no_loopback)
    caplog.set_level(logging.WARNING, logger=fast_paths.__name__)
    verdict = fast_paths.evaluate(fast_paths.requested(settings), settings)
    assert all(verdict.enabled.values()) and not verdict.off
    (line,) = _warnings(caplog)
    assert line.startswith("fast path loopback probe could not run (OSError: [Errno 99]")


def test_a_cluster_node_refuses_to_start_when_the_pubsub_hooks_it_replaces_moved(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clustered = settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/10"})
    fast_path_checks.check_cluster()  # the pinned python-socketio: fine

    # A release that starts its listener under another name: ClusterManager._thread would
    # never run and this node would hear nothing from the others.
    def initialize(self: Any) -> None:
        self.thread = self.server.start_background_task(self._listener)

    monkeypatch.setattr(async_pubsub_manager.AsyncPubSubManager, "initialize", initialize)
    with pytest.raises(RuntimeError) as refused:
        fast_paths.select(clustered)
    version = fast_paths.library_version("python-socketio")
    assert str(refused.value) == (
        f"cluster_pubsub: python-socketio {version}: AsyncPubSubManager.initialize no longer "
        "calls _thread; server/cluster.py needs updating (docs/internals.md)"
    )


def test_with_compression_accepted_the_broadcast_path_is_still_probed_and_on(
    settings: Settings,
) -> None:
    compressed = settings.model_copy(update={"ws_compression": True})
    verdict = fast_paths.evaluate(fast_paths.requested(compressed), compressed)
    assert not verdict.off
    assert verdict.enabled == {p: p != "engine_websocket" for p in fast_paths.PATHS}
