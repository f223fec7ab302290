"""Logout on one node ends the session's sockets on every node and its tokens everywhere."""

from __future__ import annotations

from backchannel.server.settings import Settings
from tests.accounts_support import claims_of, disconnected, login, revocations_linked
from tests.nodes import node


async def test_logout_and_logout_all_end_sockets_on_two_nodes_and_refuse_old_tokens(
    cluster_settings: Settings,
) -> None:
    async with node(cluster_settings) as a, node(cluster_settings) as b:
        await revocations_linked(a)
        await revocations_linked(b)
        fan = await a.api.register()
        phone = await login(a.api, fan, user_agent="Phone")
        laptop = await login(b.api, fan, user_agent="Laptop")
        events = ("session:ended",)
        phone_on_a = await a.sockets.connect("/chat", phone, events=events)
        phone_on_b = await b.sockets.connect("/notifications", phone, events=events)
        laptop_on_a = await a.sockets.connect("/presence", laptop, events=events)

        status, _ = await a.api.call("POST", "/api/v1/auth/logout", user=phone)
        assert status == 204
        assert await phone_on_a.wait_for("session:ended") == [{"reason": "logout"}]
        assert await phone_on_b.wait_for("session:ended") == [{"reason": "logout"}]
        await disconnected(phone_on_a)
        await disconnected(phone_on_b)
        await laptop_on_a.assert_nothing("session:ended")

        # Node B never saw the logout request; it refuses the token all the same, at once.
        status, body = await b.api.call("GET", "/api/v1/auth/me", user=phone)
        assert status == 401 and body["error"]["code"] == "unauthorized"
        refused = await b.sockets.refused("/chat", token=phone.access_token)
        assert refused["data"]["code"] == "unauthorized"
        status, listed = await b.api.call("GET", "/api/v1/auth/sessions", user=laptop)
        assert claims_of(phone)["sid"] not in {item["id"] for item in listed["items"]}
        assert claims_of(laptop)["sid"] in {item["id"] for item in listed["items"]}

        status, _ = await b.api.call("POST", "/api/v1/auth/logout-all", user=laptop)
        assert status == 204
        assert await laptop_on_a.wait_for("session:ended") == [{"reason": "logout"}]
        await disconnected(laptop_on_a)
        for user in (fan, laptop):
            assert (await a.api.call("GET", "/api/v1/auth/me", user=user))[0] == 401
        again = await login(a.api, fan)
        status, listed = await a.api.call("GET", "/api/v1/auth/sessions", user=again)
        assert [item["current"] for item in listed["items"]] == [True]


async def test_a_node_started_after_a_logout_refuses_that_sessions_token(
    cluster_settings: Settings,
) -> None:
    async with node(cluster_settings) as a:
        fan = await a.api.register()
        await a.api.call("POST", "/api/v1/auth/logout", user=fan)
        async with node(cluster_settings) as late:
            status, _ = await late.api.call("GET", "/api/v1/auth/me", user=fan)
            assert status == 401
