"""`backchannel push test USER_ID`: one test push to every device of a user."""

from __future__ import annotations

from backchannel.persistence import devices, notifications
from backchannel.persistence.database import Database
from backchannel.persistence.devices import Device
from backchannel.push.messages import Outcome, PushMessage, PushResult
from backchannel.push.providers import PushProviders

TEST_TYPE = "test"


async def send_test_push(
    db: Database, providers: PushProviders, user_id: str
) -> list[tuple[Device, PushResult]]:
    """Send a test push to each of the user's devices; a device its provider calls gone goes."""
    async with db.connection() as conn:
        targets = await devices.list_devices(conn, user_id)
        badge = await notifications.unread_count(conn, user_id)
    message = PushMessage(
        notification_id=None,
        type=TEST_TYPE,
        title="Backchannel test push",
        body="Push notifications reach this device.",
        data={},
        collapse_key="backchannel-test",
        badge=badge,
    )
    answers = []
    for device in targets:
        result = await providers.send(device, message)
        if result.outcome is Outcome.GONE:
            async with db.connection() as conn:
                await devices.delete_gone(conn, device.id)
        answers.append((device, result))
    return answers
