"""A live socket refreshes its token in place: warned before expiry, never cut off if in time."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.accounts_support import claims_of, disconnected, token
from tests.support import Api, Sockets

EVENTS = ("session:expiring", "session:expired")


@pytest.mark.parametrize("namespace", ["/chat", "/typing", "/presence", "/ppv", "/notifications"])
async def test_a_socket_that_refreshes_in_time_stays_past_its_first_tokens_expiry(
    api: Api, sockets: Sockets, namespace: str
) -> None:
    fan = await api.register()
    sid = claims_of(fan)["sid"]
    socket = await sockets.connect(namespace, token=token(fan.id, ttl=2, sid=sid), events=EVENTS)
    # Less than 30 s left: the warning comes at once.
    [warning] = await socket.wait_for("session:expiring")
    assert datetime.fromisoformat(warning["expires_at"]).timestamp() == pytest.approx(
        time.time() + 2, abs=1.5
    )

    fresh = token(fan.id, ttl=60, sid=sid)
    ack = await socket.call("auth:refresh", {"token": fresh})
    assert ack["ok"], ack
    assert datetime.fromisoformat(ack["data"]["expires_at"]).timestamp() == pytest.approx(
        time.time() + 60, abs=2
    )
    await socket.assert_nothing("session:expired", within=2.5)  # past the first token's exp
    assert socket.client.connected
    await socket.assert_nothing("session:expiring", within=0.1)  # the new expiry is far off


async def test_a_socket_that_does_not_refresh_is_warned_then_expired(
    api: Api, sockets: Sockets
) -> None:
    fan = await api.register()
    socket = await sockets.connect("/chat", token=token(fan.id, ttl=2), events=EVENTS)
    await socket.wait_for("session:expiring")
    assert socket.received["session:expired"] == []
    [expired] = await socket.wait_for("session:expired", timeout=5)
    assert expired["code"] == "token_expired"
    await disconnected(socket)


async def test_refreshing_with_another_users_or_a_bad_token_is_refused(
    api: Api, sockets: Sockets
) -> None:
    fan, other = await api.register(), await api.register()
    socket = await sockets.connect("/chat", fan, events=EVENTS)
    ack = await socket.call("auth:refresh", {"token": other.access_token})
    assert ack["error"]["code"] == "forbidden"
    ack = await socket.call("auth:refresh", {"token": "garbage"})
    assert ack["error"]["code"] == "unauthorized"
    ack = await socket.call("auth:refresh", {})
    assert ack["error"]["code"] == "invalid"
    ack = await socket.call("auth:refresh", {"token": token(fan.id, ttl=-5)})
    assert ack["error"]["code"] == "token_expired"
    assert socket.client.connected


async def test_a_refreshed_socket_belongs_to_its_new_session(api: Api, sockets: Sockets) -> None:
    fan = await api.register()
    from tests.accounts_support import login

    second = await login(api, fan)
    socket = await sockets.connect("/chat", fan, events=("session:ended",))
    ack = await socket.call("auth:refresh", {"token": second.access_token})
    assert ack["ok"], ack
    # The first session ends: the socket now lives on the second one's token.
    await api.call("POST", "/api/v1/auth/logout", user=fan)
    await socket.assert_nothing("session:ended", within=0.5)
    await api.call("POST", "/api/v1/auth/logout", user=second)
    assert await socket.wait_for("session:ended") == [{"reason": "logout"}]
