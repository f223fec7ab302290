"""What the accounts tests share: logging in again as the same user, and waiting for a
node's session revocations to be listening."""

from __future__ import annotations

import time
from typing import Any

import jwt

from backchannel.server.keys import RUNTIME
from tests.conftest import TEST_JWT_SECRET
from tests.nodes import Node, eventually
from tests.support import Api, Socket, User


async def login(api: Api, user: User, *, user_agent: str = "pytest", ip: str | None = None) -> User:
    """A new session of the same user, through the real route."""
    headers = {"User-Agent": user_agent}
    if ip is not None:
        headers["X-Forwarded-For"] = ip
    status, body = await api.call(
        "POST",
        "/api/v1/auth/login",
        json={"email": user.email, "password": user.password},
        headers=headers,
    )
    assert status == 200, body
    return User(
        id=user.id,
        email=user.email,
        password=user.password,
        role=body["user"]["role"],
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
    )


def claims_of(user: User) -> dict[str, Any]:
    """The claims of a user's access token (ours: HS256 with the test secret)."""
    decoded: dict[str, Any] = jwt.decode(user.access_token, TEST_JWT_SECRET, algorithms=["HS256"])
    return decoded


def token(user_id: str, *, ttl: float, sid: str | None = None) -> str:
    """An access token of ours for `user_id` living `ttl` seconds."""
    now = time.time()
    claims: dict[str, Any] = {"sub": user_id, "type": "access", "iat": int(now), "exp": now + ttl}
    if sid is not None:
        claims["sid"] = sid
    return jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")


async def revocations_linked(at: Node) -> None:
    """Wait until the node listens for other nodes' ended sessions."""
    runtime = at.server.app[RUNTIME]
    await eventually(lambda: runtime.revocations.linked, what="revocations link")


async def disconnected(socket: Socket, timeout: float = 5.0) -> None:
    """Wait until the server has closed this socket's namespace."""
    await eventually(
        lambda: socket.namespace not in socket.client.namespaces,
        timeout=timeout,
        what=f"{socket.namespace} disconnected",
    )
