"""What a test user does: register, log in, connect sockets, and wait for what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

_counter = itertools.count(1)
DEFAULT_TIMEOUT = 5.0


@dataclass
class User:
    """A registered user with tokens."""

    id: str
    email: str
    password: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def auth_headers(self) -> dict[str, str]:
        """`Authorization: Bearer` for this user."""
        return {"Authorization": f"Bearer {self.access_token}"}


class Api:
    """The HTTP side-API at a real address."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        user: User | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send a request; returns (status, parsed JSON body or None)."""
        all_headers = dict(headers or {})
        if user is not None:
            all_headers.update(user.auth_headers)
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        async with self.session.request(
            method, url, json=json, data=data, headers=all_headers
        ) as response:
            body = await response.read()
            parsed = None
            if body and response.content_type == "application/json":
                parsed = await response.json()
            return response.status, parsed

    async def register(self, role: str = "fan", **overrides: Any) -> User:
        """Register a fresh user through the real route."""
        n = next(_counter)
        payload = {
            "email": f"user{n}-{id(self):x}@example.com",
            "password": "correct horse battery",
            "display_name": f"{role.title()} {n}",
            "role": role,
        }
        payload.update(overrides)
        status, body = await self.call("POST", "/api/v1/auth/register", json=payload)
        assert status == 201, body
        return User(
            id=body["user"]["id"],
            email=payload["email"],
            password=payload["password"],
            role=role,
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
        )


@dataclass
class Socket:
    """A real python-socketio client connected to one namespace, recording what arrives."""

    client: socketio.AsyncClient
    namespace: str
    received: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def record(self, event: str) -> None:
        """Start recording `event`."""

        async def handler(data: Any = None) -> None:
            async with self._arrived:
                self.received[event].append(data)
                self._arrived.notify_all()

        self.client.on(event, handler, namespace=self.namespace)

    async def call(self, event: str, data: Any = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Emit with an ack and return the ack payload."""
        return await self.client.call(
            event, data if data is not None else {}, namespace=self.namespace, timeout=timeout
        )

    async def wait_for(
        self, event: str, count: int = 1, timeout: float = DEFAULT_TIMEOUT
    ) -> list[Any]:
        """Wait until `count` of `event` have arrived; returns them all."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.received[event]) >= count), timeout
            )
            return list(self.received[event])

    async def assert_nothing(self, event: str, within: float = 0.3) -> None:
        """Check that `event` does not arrive within a short window."""
        before = len(self.received[event])
        try:
            await self.wait_for(event, before + 1, timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {event}: {self.received[event][before:]}")

    async def disconnect(self) -> None:
        """Close the connection."""
        await self.client.disconnect()


class Sockets:
    """Opens sockets for a test and closes them all at the end."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._clients: list[socketio.AsyncClient] = []

    async def connect(
        self,
        namespace: str,
        user: User | None = None,
        *,
        token: str | None = None,
        auth: Any = "default",
        headers: dict[str, str] | None = None,
        events: tuple[str, ...] = (),
    ) -> Socket:
        """Connect to one namespace; raises `socketio.exceptions.ConnectionError` if refused."""
        client = socketio.AsyncClient(reconnection=False)
        self._clients.append(client)
        socket_ = Socket(client, namespace)
        for name in (*events, "connect_error", "session:expired", "server:shutdown"):
            socket_.record(name)
        if auth == "default":
            chosen = token or (user.access_token if user else None)
            auth = {"token": chosen} if chosen else None
        await client.connect(
            self.base_url,
            namespaces=[namespace],
            auth=auth,
            headers=headers or {},
            transports=["websocket"],
            wait_timeout=DEFAULT_TIMEOUT,
        )
        return socket_

    async def refused(self, namespace: str, **kwargs: Any) -> Any:
        """Try to connect, expect a refusal, and return the `connect_error` data."""
        client = socketio.AsyncClient(reconnection=False)
        self._clients.append(client)
        errors: list[Any] = []
        client.on("connect_error", lambda data=None: errors.append(data), namespace=namespace)
        auth = kwargs.pop("auth", None)
        token = kwargs.pop("token", None)
        if token is not None:
            auth = {"token": token}
        try:
            await client.connect(
                self.base_url,
                namespaces=[namespace],
                auth=auth,
                headers=kwargs.pop("headers", {}),
                transports=["websocket"],
                wait_timeout=DEFAULT_TIMEOUT,
            )
        except socketio.exceptions.ConnectionError:
            return errors[0] if errors else None
        raise AssertionError(f"connection to {namespace} was accepted")

    async def close_all(self) -> None:
        """Disconnect every socket this test opened."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.disconnect()
