"""Dependency-outage logs: one line per outage and per minute with a count (issue #13, item 9).

A 5-second Redis outage used to write two warnings per message, one with a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from backchannel.errors import Unavailable
from backchannel.outage_log import OutageLog, dependency_of, report
from backchannel.rooms.emitter import PublishFailed
from backchannel.server.settings import Settings
from tests.chat_support import node, open_dm
from tests.outages import RedisServer


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "test.outages"]


def test_an_outage_writes_one_line_then_one_a_minute_with_a_count_then_one_when_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outages = OutageLog(logging.getLogger("test.outages"), clock=clock)
    caplog.set_level(logging.INFO)
    down = RedisConnectionError("Connection refused")

    for _ in range(1500):  # 5 seconds of messages, each failing on Redis
        outages.failed("redis", "cluster publish", down)
        clock.now += 5 / 1500
    assert len(_lines(caplog)) == 1
    first = _lines(caplog)[0]
    assert "redis unavailable: cluster publish failed" in first.getMessage()
    assert first.exc_info is None

    clock.now = 1005.5
    for _ in range(130):  # it goes on for two more minutes, a failure a second
        outages.failed("redis", "cluster publish", down)
        clock.now += 1.0
    summaries = [r.getMessage() for r in _lines(caplog)[1:]]
    assert len(summaries) == 2
    assert "still unavailable" in summaries[0] and "1555 failures" in summaries[0]
    assert "60 failures in the last 60s" in summaries[1]

    outages.recovered("redis")
    assert "redis available again" in _lines(caplog)[-1].getMessage()
    assert not outages.failing("redis")
    assert len(_lines(caplog)) == 4


def test_a_failure_after_a_quiet_spell_is_a_new_outage_with_its_own_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outages = OutageLog(logging.getLogger("test.outages"), clock=clock)
    caplog.set_level(logging.INFO)
    outages.failed("postgres", "unit of work", OSError("connection refused"))
    outages.failed("redis", "cluster publish", RedisConnectionError("refused"))
    clock.now += 30  # nothing failed for longer than the quiet spell: both were back
    outages.failed("postgres", "unit of work", OSError("connection refused"))
    messages = [r.getMessage() for r in _lines(caplog)]
    assert messages[0].startswith("postgres unavailable") and messages[1].startswith("redis")
    assert messages[2].startswith("postgres available again")
    assert messages[3].startswith("postgres unavailable")


def test_only_dependency_failures_are_rate_limited_a_bug_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert dependency_of(PublishFailed("ConnectionError: refused")) == "redis"
    assert dependency_of(Unavailable()) == "dependency"
    assert dependency_of(ValueError("a bug")) is None
    caplog.set_level(logging.INFO)
    log = logging.getLogger("test.bugs")
    for _ in range(3):
        report(log, "live delivery of message:new", ValueError("a bug"))
    bugs = [r for r in caplog.records if r.name == "test.bugs"]
    assert len(bugs) == 3 and all(r.exc_info is not None for r in bugs)


async def test_messages_sent_while_redis_is_down_write_no_traceback_and_a_few_lines(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    try:
        async with node(
            settings,
            redis_url=redis.url,
            redis_timeout_seconds=0.5,
            message_rate_limit="1000/1s:1000",
            socket_event_rate_limit="1000/1s:1000",
        ) as n:
            creator = await n.api.register(role="creator")
            fan = await n.api.register()
            conversation_id = await open_dm(n.sockets, creator, fan)
            chat = await n.sockets.connect("/chat", creator)
            redis.stop()
            caplog.clear()
            caplog.set_level(logging.WARNING, logger="backchannel")
            for number in range(40):
                ack = await chat.call(
                    "message:send",
                    {"conversation_id": conversation_id, "client_id": f"c{number}", "body": "hi"},
                )
                assert ack["ok"], ack  # stored and acked, Redis or not
            lines = [r for r in caplog.records if r.name.startswith("backchannel")]
            assert [r.getMessage() for r in lines if r.exc_info] == []
            assert len(lines) < 10, [r.getMessage() for r in lines]
    finally:
        redis.stop()
