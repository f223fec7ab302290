"""A user sees their sessions and ends them: logout, logout everywhere, one by id."""

from __future__ import annotations

from tests.accounts_support import claims_of, disconnected, login
from tests.support import Api, Sockets


async def test_every_login_is_a_session_the_user_can_list_and_end(
    api: Api, sockets: Sockets
) -> None:
    fan = await api.register()
    phone = await login(api, fan, user_agent="Phone/1.0")
    laptop = await login(api, fan, user_agent="Laptop/2.0")
    assert claims_of(phone)["sid"] != claims_of(laptop)["sid"]

    status, listed = await api.call("GET", "/api/v1/auth/sessions", user=laptop)
    assert status == 200
    by_agent = {item["user_agent"]: item for item in listed["items"]}
    assert set(by_agent) >= {"Phone/1.0", "Laptop/2.0"}
    assert len(listed["items"]) == 3  # registering logged in too
    assert by_agent["Laptop/2.0"]["current"] and not by_agent["Phone/1.0"]["current"]
    assert by_agent["Phone/1.0"]["ip"] == "127.0.0.1"
    assert by_agent["Phone/1.0"]["id"] == claims_of(phone)["sid"]

    phone_socket = await sockets.connect("/chat", phone, events=("session:ended",))
    laptop_socket = await sockets.connect("/chat", laptop, events=("session:ended",))
    status, _ = await api.call(
        "DELETE", f"/api/v1/auth/sessions/{claims_of(phone)['sid']}", user=laptop
    )
    assert status == 204
    assert await phone_socket.wait_for("session:ended") == [{"reason": "logout"}]
    await disconnected(phone_socket)
    await laptop_socket.assert_nothing("session:ended")

    # The ended session's access token and refresh token are refused at once.
    status, body = await api.call("GET", "/api/v1/auth/me", user=phone)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, _ = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": phone.refresh_token}
    )
    assert status == 401
    refused = (await sockets.refused("/chat", token=phone.access_token))["data"]
    assert refused["code"] == "unauthorized"

    status, listed = await api.call("GET", "/api/v1/auth/sessions", user=laptop)
    assert "Phone/1.0" not in {item["user_agent"] for item in listed["items"]}


async def test_a_session_of_another_user_cannot_be_ended(api: Api) -> None:
    fan, other = await api.register(), await api.register()
    theirs = claims_of(other)["sid"]
    for sid in (theirs, "not-a-uuid"):
        status, body = await api.call("DELETE", f"/api/v1/auth/sessions/{sid}", user=fan)
        assert status == 404 and body["error"]["code"] == "not_found"
    assert (await api.call("GET", "/api/v1/auth/me", user=other))[0] == 200


async def test_logout_with_the_refresh_token_or_the_bearer_ends_that_session_only(
    api: Api,
) -> None:
    fan = await api.register()
    second = await login(api, fan)
    third = await login(api, fan)
    status, _ = await api.call(
        "POST", "/api/v1/auth/logout", json={"refresh_token": fan.refresh_token}
    )
    assert status == 204
    status, _ = await api.call("POST", "/api/v1/auth/logout", user=second)
    assert status == 204
    assert (await api.call("GET", "/api/v1/auth/me", user=fan))[0] == 401
    assert (await api.call("GET", "/api/v1/auth/me", user=second))[0] == 401
    assert (await api.call("GET", "/api/v1/auth/me", user=third))[0] == 200
    # Logging out again, or with an unknown token, is not an error.
    status, _ = await api.call("POST", "/api/v1/auth/logout", user=second)
    assert status == 204
    status, _ = await api.call("POST", "/api/v1/auth/logout", json={"refresh_token": "x" * 43})
    assert status == 204


async def test_reusing_a_rotated_refresh_token_ends_the_session_and_its_access_tokens(
    api: Api,
) -> None:
    fan = await api.register()
    status, rotated = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": fan.refresh_token}
    )
    assert status == 200
    status, _ = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": fan.refresh_token}
    )
    assert status == 401
    headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await api.call("GET", "/api/v1/auth/me", headers=headers))[0] == 401
