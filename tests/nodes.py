"""More nodes in one test, each with its own clients, and bounded waiting for conditions."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from aiohttp.test_utils import TestServer

from backchannel.rooms.emitter import Emitter
from backchannel.server.app import create_app
from backchannel.server.cluster import ClusterManager
from backchannel.server.keys import RUNTIME, SIO
from backchannel.server.settings import Settings
from tests.support import Api, Sockets

T = TypeVar("T")


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 5.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        result = condition()
        last = await result if inspect.isawaitable(result) else result
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


@dataclass
class Node:
    """A Backchannel node on a real port, with an HTTP client and socket clients of its own."""

    server: TestServer
    api: Api
    sockets: Sockets

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return str(self.server.make_url("")).rstrip("/")

    @property
    def emitter(self) -> Emitter:
        """The node's emitter, as a domain operation would use it."""
        return self.server.app[RUNTIME].emitter

    def linked(self) -> bool:
        """Whether the node's cluster link is subscribed (single nodes always are)."""
        manager = self.server.app[SIO].manager
        return not isinstance(manager, ClusterManager) or manager.linked


@asynccontextmanager
async def node(settings: Settings) -> AsyncIterator[Node]:
    """Start a node with these settings; wait for its cluster link; close it all after."""
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    sockets = Sockets(url)
    try:
        async with aiohttp.ClientSession() as session:
            started = Node(server, Api(url, session), sockets)
            await eventually(started.linked, what="cluster link")
            yield started
    finally:
        await sockets.close_all()
        await server.close()
