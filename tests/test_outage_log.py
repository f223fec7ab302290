"""`OutageLog`: one line when an outage starts, one per interval while it lasts, one at the end."""

from __future__ import annotations

import logging

import pytest

from backchannel.outage_log import OutageLog

log = logging.getLogger("tests.outage_log")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == log.name]


def test_a_long_outage_is_summarised_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    outage = OutageLog(log, "redis", every=0.0)  # every failure past the first is "a minute on"
    with caplog.at_level(logging.WARNING, logger=log.name):
        outage.failed("ConnectionError")
        outage.failed("ConnectionError")
        outage.succeeded()
    first, summary, end = lines(caplog)
    assert first == "redis unavailable: ConnectionError"
    assert summary.startswith("redis still unavailable after ")
    assert "1 failures in the last" in summary and summary.endswith("(last: ConnectionError)")
    assert end.startswith("redis available again after ") and end.endswith("(2 failures)")
    assert not outage.active


def test_failures_within_the_interval_are_counted_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = OutageLog(log, "database")
    with caplog.at_level(logging.WARNING, logger=log.name):
        for _ in range(101):
            outage.failed("QueryCanceledError")
        outage.succeeded()
        outage.succeeded()
    first, end = lines(caplog)
    assert first == "database unavailable: QueryCanceledError"
    assert end.startswith("database available again after ") and end.endswith("(101 failures)")


def test_one_isolated_failure_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    outage = OutageLog(log, "database")
    with caplog.at_level(logging.WARNING, logger=log.name):
        outage.failed("OSError")
        outage.succeeded()
    assert lines(caplog) == ["database unavailable: OSError"]
