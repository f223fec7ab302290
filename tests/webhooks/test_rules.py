"""Pure rules: the backoff, what the payload carries, and the settings that guard a lease."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from backchannel.domain.webhook_delivery import payload, retry_delay
from backchannel.persistence.webhooks import Claimed
from backchannel.server.settings import Settings


def test_the_backoff_doubles_from_the_base_with_jitter_up_to_the_cap() -> None:
    for attempts, ceiling in ((1, 30.0), (2, 60.0), (3, 120.0), (10, 3600.0), (500, 3600.0)):
        delays = [retry_delay(attempts, 30.0, 3600.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempts, min(delays))
        assert len(set(delays)) > 1, "jittered"


def _claimed(include_bodies: bool) -> Claimed:
    return Claimed(
        id=1,
        attempts=1,
        window_start=datetime.now(UTC),
        event_id=uuid.UUID(int=7),
        event_type="message.created",
        data={"message_id": "9", "paid": False},
        private={"body": "hello"},
        event_created_at=datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
        endpoint_id=1,
        url="https://platform.example/hooks",
        secret="whsec_x",
        include_bodies=include_bodies,
    )


def test_the_payload_is_id_type_created_at_data_and_the_body_only_when_asked() -> None:
    plain = json.loads(payload(_claimed(False)))
    assert plain == {
        "id": str(uuid.UUID(int=7)),
        "type": "message.created",
        "created_at": "2026-12-03T09:00:00Z",
        "data": {"message_id": "9", "paid": False},
    }
    assert json.loads(payload(_claimed(True)))["data"]["body"] == "hello"


def test_a_lease_no_longer_than_an_attempt_is_refused() -> None:
    with pytest.raises(ValidationError, match="webhook_lease_seconds"):
        Settings(webhook_timeout_seconds=10, webhook_lease_seconds=10)
    assert Settings(webhook_timeout_seconds=1, webhook_lease_seconds=3).webhook_lease_seconds == 3
