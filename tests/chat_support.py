"""Helpers for the messaging tests: a server with its own settings, and a creator-fan DM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from backchannel.server.app import create_app
from backchannel.server.settings import Settings
from tests.support import Api, Sockets, User


@dataclass
class Node:
    """A running server with clients of it."""

    server: TestServer
    api: Api
    sockets: Sockets


@asynccontextmanager
async def node(settings: Settings, **overrides: Any) -> AsyncIterator[Node]:
    """A server of `settings` changed by `overrides`, closed (with its clients) afterwards."""
    server = TestServer(create_app(settings.model_copy(update=overrides)), host="127.0.0.1")
    await server.start_server()
    base_url = str(server.make_url("")).rstrip("/")
    sockets = Sockets(base_url)
    try:
        async with aiohttp.ClientSession() as session:
            yield Node(server, Api(base_url, session), sockets)
    finally:
        await sockets.close_all()
        await server.close()


async def open_dm(sockets: Sockets, a: User, b: User) -> str:
    """Open the DM between `a` and `b` as `a`; returns its id."""
    opener = await sockets.connect("/chat", a)
    ack = await opener.call("conversation:open", {"participant_ids": [b.id]})
    assert ack["ok"], ack
    await opener.disconnect()
    return str(ack["data"]["id"])


def sent(ack: dict[str, Any]) -> dict[str, Any]:
    """The message of a successful `message:send` ack."""
    assert ack["ok"], ack
    data: dict[str, Any] = ack["data"]
    return data
