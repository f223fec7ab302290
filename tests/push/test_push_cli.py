"""`backchannel push test USER_ID`: a test push to every device, one line per provider answer."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from backchannel.server.cli import main
from backchannel.server.settings import Settings
from tests.chat_support import node
from tests.push_receivers import ApnsReceiver, FcmReceiver, Scripted, WebPushReceiver
from tests.services import RunServices

DEVICES = "/api/v1/devices"


@pytest.fixture
def push_env(
    services: RunServices,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fcm_receiver: FcmReceiver,
    apns_receiver: ApnsReceiver,
) -> None:
    """The operator's environment: the database, and FCM/APNs pointed at the receivers."""
    for name in list(os.environ):
        if name.startswith("BACKCHANNEL_"):
            monkeypatch.delenv(name)
    env = {
        "DATABASE_URL": services.database_url,
        "BACKCHANNEL_DATA_DIR": str(tmp_path),  # the same VAPID key as the test server's
        "BACKCHANNEL_MIGRATE_ON_START": "false",
        "BACKCHANNEL_FCM_CREDENTIALS": json.dumps(fcm_receiver.service_account()),
        "BACKCHANNEL_FCM_BASE_URL": fcm_receiver.base_url,
        "BACKCHANNEL_APNS_KEY_FILE": str(apns_receiver.write_key(tmp_path)),
        "BACKCHANNEL_APNS_KEY_ID": apns_receiver.key_id,
        "BACKCHANNEL_APNS_TEAM_ID": apns_receiver.team_id,
        "BACKCHANNEL_APNS_TOPIC": apns_receiver.topic,
        "BACKCHANNEL_APNS_BASE_URL": apns_receiver.base_url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)


async def push_test(capsys: Any, user_id: str) -> tuple[int, list[str], str]:
    """Run the command in a thread (it runs its own loop); (exit code, stdout lines, stderr)."""
    code = await asyncio.to_thread(main, ["push", "test", user_id])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


@pytest.mark.usefixtures("push_env")
async def test_an_operator_sends_a_test_push_to_every_device_of_a_user(
    settings: Settings,
    capsys: Any,
    webpush_receiver: WebPushReceiver,
    fcm_receiver: FcmReceiver,
    apns_receiver: ApnsReceiver,
) -> None:
    async with node(settings) as running:
        api = running.api
        fan = await api.register()
        _, key = await api.call("GET", "/api/v1/push/webpush-key")
        webpush_receiver.vapid_public_key = key["public_key"]
        browser = webpush_receiver.subscribe()
        ids = {}
        for name, device in {
            "browser": {"platform": "webpush", "subscription": browser.json()},
            "android": {"platform": "fcm", "token": "fcm-token-1"},
            "iphone": {"platform": "apns", "token": "d4" * 32},
            "old iphone": {"platform": "apns", "token": "e5" * 32},
        }.items():
            status, body = await api.call("POST", DEVICES, json=device, user=fan)
            assert status == 201, body
            ids[name] = body["id"]
        apns_receiver.answer("e5" * 32, Scripted(410, {"reason": "Unregistered"}))

        code, lines, err = await push_test(capsys, fan.id)
        assert code == 1, err  # not every device got it
        _expect_first_run(lines, ids)
        _, listed = await api.call("GET", DEVICES, user=fan)
        assert sorted(d["id"] for d in listed["items"]) == sorted(
            ids[name] for name in ("browser", "android", "iphone")
        )

        code, lines, err = await push_test(capsys, fan.id)
        assert code == 0, err
        assert [line.split("\t")[2] for line in lines] == ["delivered"] * 3

        loner = await api.register()
        code, lines, err = await push_test(capsys, loner.id)
        assert (code, lines) == (1, []) and f"no devices for user {loner.id}" in err

    for errors in (webpush_receiver.errors, fcm_receiver.errors, apns_receiver.errors):
        assert errors == []
    assert len(webpush_receiver.received) == 2
    assert webpush_receiver.received[0].payload["type"] == "test"
    assert len(fcm_receiver.received) == 2 and len(apns_receiver.received) == 2


def _expect_first_run(lines: list[str], ids: dict[str, int]) -> None:
    """The lines, with the provider's free-text detail (message name, apns-id) left aside."""
    fields = [line.split("\t") for line in lines]
    assert [f[:4] for f in fields] == [
        [f"device {ids['browser']}", "webpush", "delivered", "201"],
        [f"device {ids['android']}", "fcm", "delivered", "200"],
        [f"device {ids['iphone']}", "apns", "delivered", "200"],
        [f"device {ids['old iphone']}", "apns", "gone", "410"],
    ], lines
    assert fields[3][4] == "Unregistered (device removed)"
