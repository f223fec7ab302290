"""Abuse is slowed, not served: failed logins, HTTP bursts, connect storms and event floods
answer `rate_limited` with when to retry, on one node in memory and across nodes in Redis."""

from __future__ import annotations

from typing import Any

import pytest

from backchannel.server.settings import Settings
from tests.nodes import Node, node
from tests.support import User

WRONG = "not my password at all"


async def login(at: Node, user: User, password: str, ip: str | None = None) -> tuple[int, Any]:
    """Log in through the HTTP API, optionally as seen through a proxy from `ip`."""
    headers = {"X-Forwarded-For": ip} if ip else None
    return await at.api.call(
        "POST",
        "/api/v1/auth/login",
        json={"email": user.email, "password": password},
        headers=headers,
    )


def assert_rate_limited(status: int, body: Any) -> None:
    """429 with the contract's error and a retry delay."""
    assert status == 429, body
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["details"]["retry_after_ms"] > 0


@pytest.mark.parametrize("cluster", [False, True], ids=["single-node", "cluster"])
async def test_five_failed_logins_lock_the_account_even_for_the_right_password(
    settings: Settings, cluster_settings: Settings, cluster: bool
) -> None:
    async with node(cluster_settings if cluster else settings) as a:
        victim = await a.api.register()
        for _ in range(5):
            status, body = await login(a, victim, WRONG)
            assert status == 401, body

        status, body = await login(a, victim, victim.password)
        assert_rate_limited(status, body)
        assert body["error"]["message"] == "too many failed logins; try again later"
        async with a.api.session.post(
            f"{a.url}/api/v1/auth/login", json={"email": victim.email, "password": WRONG}
        ) as response:
            retry_after = int(response.headers["Retry-After"])
        assert 60 <= retry_after <= 900  # a unit of "5 per 15 min" comes back in 3 minutes
        async with a.api.session.get(f"{a.url}/metrics") as response:
            assert 'backchannel_rate_limited_total{scope="login"} 2.0' in await response.text()


async def test_a_burst_against_one_account_never_refuses_anothers_right_password_from_that_ip(
    cluster_settings: Settings,
) -> None:
    trusted = cluster_settings.model_copy(
        update={"trusted_proxies": "127.0.0.1/32", "login_failures_per_ip": "8/900s"}
    )
    async with node(trusted) as a, node(trusted) as b:
        victim, colleague = await a.api.register(), await a.api.register()
        # An attacker behind the office NAT hammers the victim's account, over both nodes.
        for i in range(20):
            status, _ = await login(a if i % 2 else b, victim, WRONG, ip="203.0.113.9")
            assert status in (401, 429)
        assert_rate_limited(*await login(a, victim, victim.password, ip="203.0.113.9"))
        # The colleague behind the same NAT logs in with the right password, on either node.
        status, body = await login(b, colleague, colleague.password, ip="203.0.113.9")
        assert status == 200, body
        # The victim, from home, is not locked out by five failures from the office.
        status, _ = await login(a, victim, victim.password, ip="198.51.100.4")
        assert status == 200


async def test_spraying_many_accounts_from_one_ip_meets_the_ip_ceiling(
    cluster_settings: Settings,
) -> None:
    trusted = cluster_settings.model_copy(
        update={"trusted_proxies": "127.0.0.1/32", "login_failures_per_ip": "5/900s"}
    )
    async with node(trusted) as a, node(trusted) as b:
        users = [await a.api.register() for _ in range(6)]
        for i, user in enumerate(users[:5]):
            status, _ = await login(a if i % 2 else b, user, WRONG, ip="203.0.113.9")
            assert status == 401
        # The IP has spent its ceiling: an account that failed from it is refused there...
        assert_rate_limited(*await login(a, users[0], users[0].password, ip="203.0.113.9"))
        # ...an account that never failed from it is not, and neither is another client.
        assert (await login(b, users[5], users[5].password, ip="203.0.113.9"))[0] == 200
        assert (await login(b, users[0], users[0].password, ip="198.51.100.4"))[0] == 200


async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(settings: Settings) -> None:
    tight = settings.model_copy(update={"login_failures_per_ip": "5/900s"})
    async with node(tight) as a:
        users = [await a.api.register() for _ in range(6)]
        for i, user in enumerate(users[:5]):
            await login(a, user, WRONG, ip=f"203.0.113.{i}")  # forged: each looks new
        status, body = await login(a, users[0], users[0].password, ip="198.51.100.1")
        assert_rate_limited(status, body)  # all counted against the real peer


async def test_http_requests_are_limited_per_ip_across_nodes(cluster_settings: Settings) -> None:
    tight = cluster_settings.model_copy(update={"http_ip_rate_limit": "4/60s"})
    async with node(tight) as a, node(tight) as b:
        user = await a.api.register()  # 1
        assert (await a.api.call("GET", "/api/v1/auth/me", user=user))[0] == 200  # 2
        assert (await b.api.call("GET", "/api/v1/auth/me", user=user))[0] == 200  # 3
        assert (await b.api.call("GET", "/api/v1/auth/me", user=user))[0] == 200  # 4
        async with a.api.session.get(f"{a.url}/api/v1/auth/me", headers=user.auth_headers) as r:
            body = await r.json()
            assert_rate_limited(r.status, body)
            assert int(r.headers["Retry-After"]) >= 1

        # Probes and scrapes are never limited.
        assert (await a.api.call("GET", "/readyz"))[0] == 200
        assert (await b.api.call("GET", "/healthz"))[0] == 200


async def test_http_requests_are_limited_per_user(settings: Settings) -> None:
    tight = settings.model_copy(update={"http_user_rate_limit": "2/60s"})
    async with node(tight) as a:
        busy, calm = await a.api.register(), await a.api.register()
        for _ in range(2):
            assert (await a.api.call("GET", "/api/v1/auth/me", user=busy))[0] == 200
        status, body = await a.api.call("GET", "/api/v1/auth/me", user=busy)
        assert_rate_limited(status, body)
        assert (await a.api.call("GET", "/api/v1/auth/me", user=calm))[0] == 200


async def test_socket_connects_are_limited_per_ip(cluster_settings: Settings) -> None:
    tight = cluster_settings.model_copy(update={"connect_rate_limit": "2/60s"})
    async with node(tight) as a, node(tight) as b:
        fan = await a.api.register()
        await a.sockets.connect("/chat", fan)
        await b.sockets.connect("/notifications", fan)

        refusal = await a.sockets.refused("/presence", token=fan.access_token)

        assert refusal["data"]["code"] == "rate_limited"
        assert refusal["data"]["details"]["retry_after_ms"] > 0


async def test_a_socket_flooding_events_is_told_to_slow_down(settings: Settings) -> None:
    tight = settings.model_copy(update={"socket_event_rate_limit": "3/60s"})
    async with node(tight) as a:
        fan = await a.api.register()
        flooding = await a.sockets.connect("/chat", fan)
        other = await a.sockets.connect("/chat", fan)
        for _ in range(3):
            ack = await flooding.call("no:such:event")
            assert ack["error"]["code"] == "invalid"

        ack = await flooding.call("no:such:event")

        assert ack["ok"] is False
        assert ack["error"]["code"] == "rate_limited"
        assert ack["error"]["details"]["retry_after_ms"] > 0
        assert (await other.call("no:such:event"))["error"]["code"] == "invalid"
