"""The loopback probe of the fast paths: a throwaway Socket.IO server and raw clients.

`probe` builds the Socket.IO server the app would (`realtime.build_socketio`, with the given
fast paths on), serves it on an ephemeral 127.0.0.1 port, and drives it with two websocket
clients and one long-polling client speaking Engine.IO 4 / Socket.IO 5 text by hand: connect a
namespace, answer two pings, an event with an ack, a broadcast that must reach both websocket
sockets, a disconnect that must leave no socket and no room behind. It also checks that each
fast path was really taken (the sockets are `LeanSocket`s with their own connection, the
broadcast and the acks were written as ready frames, the OPEN packet carries the exact
`pingInterval`), so a library change that silently bypasses one is caught as well. Everything
is bounded by `PROBE_TIMEOUT`; a loaded machine takes a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import socketio
from aiohttp import web
from aiohttp.typedefs import Handler

from backchannel.rooms.fanout import FanoutMixin
from backchannel.server.engine_sockets import LeanSocket
from backchannel.server.realtime import build_socketio
from backchannel.server.send_queue import LeanQueue
from backchannel.server.settings import Settings

PROBE_TIMEOUT = 5.0
PING_INTERVAL = 0.05  # two pings within ~0.2 s; the ping timers tick every 0.05 s
NAMESPACE = "/chat"
ROOM = "fast-path-probe"


class ProbeFailed(Exception):
    """What the probe saw differ."""


class _Probe:
    """The throwaway server and what its handlers saw."""

    def __init__(self, settings: Settings, fast: Mapping[str, bool]) -> None:
        probe_settings = settings.model_copy(
            update={
                "redis_url": None,
                "msgpack": False,
                # Compressed websockets always take the library's path: probe the others.
                "ws_compression": False,
                "ping_interval_seconds": PING_INTERVAL,
                "ping_timeout_seconds": PROBE_TIMEOUT,
                "connect_deadline_seconds": PROBE_TIMEOUT,
                "max_unauthenticated_per_ip": 100,
                "cors_origins": "",
            }
        )
        self.fast = fast
        self.sio = build_socketio(probe_settings, fast)
        self.disconnected = 0
        self.gone = asyncio.Event()
        self.lean_sockets = 0
        self.errors: list[str] = []
        self.queues: set[type] = set()
        sio = self.sio

        probe = self

        class Handlers(socketio.AsyncNamespace):  # type: ignore[misc]
            async def on_connect(self, sid: str, environ: Any, auth: Any = None) -> bool:
                await sio.enter_room(sid, ROOM, namespace=NAMESPACE)
                return True

            async def on_echo(self, sid: str, data: Any) -> Any:
                eio_sid = sio.manager.eio_sid_from_sid(sid, NAMESPACE)
                socket = sio.eio.sockets.get(eio_sid)
                probe.queues.add(type(getattr(socket, "queue", None)))
                if isinstance(socket, LeanSocket) and socket.conn is not None:
                    probe.lean_sockets += 1
                return data

            async def on_shout(self, sid: str, data: Any) -> Any:
                await sio.emit("heard", data, room=ROOM, namespace=NAMESPACE)
                return "ok"

            async def on_disconnect(self, sid: str, reason: Any = None) -> None:
                probe.disconnected += 1
                if probe.disconnected >= 3:
                    probe.gone.set()

        sio.register_namespace(Handlers(NAMESPACE))


class _WsClient:
    """A websocket Engine.IO client that answers pings and keeps everything else in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pongs = 0

    async def _read(self) -> str | None:
        """The next packet; None for a ping, which is answered and counted."""
        msg = await self.ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise ProbeFailed(f"the websocket sent {msg.type.name}, not text")
        if msg.data == "2":
            await self.ws.send_str("3")
            self.pongs += 1
            return None
        return str(msg.data)

    async def next(self) -> str:
        """The next packet that is not a ping."""
        while (got := await self._read()) is None:
            pass
        return got

    async def expect(self, *wanted: str) -> None:
        """Read until every packet in `wanted` has arrived, in any order."""
        missing = list(wanted)
        while missing:
            got = await self.next()
            if got in missing:
                missing.remove(got)
            else:
                raise ProbeFailed(f"expected {missing[0]!r}, got {got[:60]!r}")

    async def pings(self, count: int) -> None:
        """Read (answering pings) until `count` pings have been answered in all."""
        while self.pongs < count:
            got = await self._read()
            if got is not None:
                raise ProbeFailed(f"expected a ping, got {got[:60]!r}")


def _open_packet(text: str) -> dict[str, Any]:
    if not text.startswith("0"):
        raise ProbeFailed(f"expected an OPEN packet, got {text[:40]!r}")
    opened: dict[str, Any] = json.loads(text[1:])
    return opened


async def _ws_session(session: aiohttp.ClientSession, base: str, probe: _Probe) -> _WsClient:
    ws = await session.ws_connect(f"{base}/socket.io/?EIO=4&transport=websocket")
    client = _WsClient(ws)
    opened = _open_packet(await client.next())
    _check_interval(opened, probe)
    await ws.send_str(f"40{NAMESPACE},")
    reply = await client.next()
    if not reply.startswith(f"40{NAMESPACE},"):
        raise ProbeFailed(f"namespace connect answered {reply[:60]!r}")
    return client


def _check_interval(opened: dict[str, Any], probe: _Probe) -> None:
    if probe.fast.get("polling") and opened.get("pingInterval") != round(PING_INTERVAL * 1000):
        raise ProbeFailed(f"OPEN carried pingInterval {opened.get('pingInterval')!r}")


async def _polling(session: aiohttp.ClientSession, base: str, probe: _Probe) -> None:
    """Connect, ack, two pings and a disconnect over long-polling only."""
    url = f"{base}/socket.io/?EIO=4&transport=polling"
    async with session.get(url) as response:
        opened = _open_packet(await response.text())
    _check_interval(opened, probe)
    url += f"&sid={opened['sid']}"

    async def post(body: str) -> None:
        async with session.post(url, data=body.encode()) as answer:
            if answer.status != 200:
                raise ProbeFailed(f"a long-polling POST got {answer.status}")

    async def until(wanted: str, pings: int = 0) -> None:
        pongs, seen = 0, False
        while not seen or pongs < pings:
            async with session.get(url) as response:
                packets = (await response.text()).split("\x1e")
            for pkt in packets:
                if pkt == "2":
                    pongs += 1
                    await post("3")
                elif pkt.startswith(wanted):
                    seen = True
                elif not pkt.startswith(("42", "43", "6")):
                    raise ProbeFailed(f"long-polling expected {wanted!r}, got {pkt[:60]!r}")

    await post(f"40{NAMESPACE},")
    await until(f"40{NAMESPACE},")
    # Two events in one POST (python-engineio refused more than 16 once; one is the test).
    await post(f'42{NAMESPACE},7["echo",{{"p":1}}]\x1e42{NAMESPACE},8["echo",{{"p":2}}]')
    await until(f'43{NAMESPACE},8[{{"p":2}}]', pings=2)
    await post("1")  # Engine.IO CLOSE


async def _websockets(session: aiohttp.ClientSession, base: str, probe: _Probe) -> None:
    first = await _ws_session(session, base, probe)
    second = await _ws_session(session, base, probe)
    before = FanoutMixin.fast_writes
    await first.ws.send_str(f'42{NAMESPACE},1["echo",{{"n":1}}]')
    await first.expect(f'43{NAMESPACE},1[{{"n":1}}]')
    await first.ws.send_str(f'42{NAMESPACE},2["shout",{{"n":2}}]')
    heard = f'42{NAMESPACE},["heard",{{"n":2}}]'
    await asyncio.gather(first.expect(heard, f'43{NAMESPACE},2["ok"]'), second.expect(heard))
    if probe.fast.get("broadcast_frames") and FanoutMixin.fast_writes - before < 4:
        raise ProbeFailed("the broadcast and its acks did not take the write-once path")
    if probe.fast.get("engine_websocket") and probe.lean_sockets < 1:
        raise ProbeFailed("the websocket stayed in aiohttp (no LeanSocket connection)")
    await asyncio.gather(first.pings(2), second.pings(2))
    await first.ws.send_str(f"41{NAMESPACE},")
    await first.ws.close()
    await second.ws.close()


async def _run(probe: _Probe) -> None:
    @web.middleware
    async def keep_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        # A failing fast path raises here: keep what it said for the warning line, and answer
        # 500 without aiohttp logging a traceback for a probe.
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:
            probe.errors.append(f"{type(exc).__name__}: {exc}")
            raise web.HTTPInternalServerError() from None

    app = web.Application(middlewares=[keep_errors])
    probe.sio.attach(app)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, logger=_ErrorsKept(probe.errors)
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        async with aiohttp.ClientSession() as session:
            async with asyncio.TaskGroup() as clients:  # one failing cancels the other
                clients.create_task(_websockets(session, base, probe))
                clients.create_task(_polling(session, base, probe))
            await asyncio.wait_for(probe.gone.wait(), PROBE_TIMEOUT)
        _check_nothing_left(probe)
    finally:
        # Websockets that left aiohttp are not in its connection list: close them here.
        with contextlib.suppress(Exception):
            await probe.sio.eio.drain(0.0)
        await probe.sio.eio.shutdown()
        await runner.cleanup()


class _ErrorsKept(logging.Logger):
    """aiohttp's server logger for the probe: errors are kept for the warning line, not logged."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("backchannel.fast_path_probe", logging.ERROR)
        self.propagate = False
        self._errors = errors

    def handle(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        text = f"{type(exc).__name__}: {exc}" if exc is not None else record.getMessage()
        self._errors.append(" ".join(text.split()))


def _check_nothing_left(probe: _Probe) -> None:
    manager = probe.sio.manager
    members = manager.rooms.get(NAMESPACE, {})
    left = {room: set(sids) for room, sids in members.items() if sids}
    if left:
        raise ProbeFailed(f"rooms still hold sockets after every disconnect: {sorted(left)}")
    index = getattr(manager, "_rooms_of", {}).get(NAMESPACE)
    if index:
        raise ProbeFailed(f"the room index still lists sockets: {sorted(index)}")
    if probe.fast.get("lean_queue") and not all(issubclass(q, LeanQueue) for q in probe.queues):
        raise ProbeFailed(f"the sockets' queues are {sorted(q.__name__ for q in probe.queues)}")


async def probe(settings: Settings, fast: Mapping[str, bool]) -> str | None:
    """Run the probe with the `fast` paths on; None when all went as expected, else what not."""
    run = _Probe(settings, fast)
    try:
        await asyncio.wait_for(_run(run), PROBE_TIMEOUT)
    except TimeoutError:
        failure = f"no answer within {PROBE_TIMEOUT:g} s"
    except Exception as exc:
        while isinstance(exc, ExceptionGroup):  # the clients' TaskGroup
            exc = exc.exceptions[0]
        failure = str(exc) if isinstance(exc, ProbeFailed) else f"{type(exc).__name__}: {exc}"
    else:
        return None
    return f"the server raised {run.errors[0]}" if run.errors else failure
