"""The live node every fuzzer runs against, and the checks that end every fuzz test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.fuzz.support import COUNTER, FuzzNode, running_node
from tests.services import RunServices


@pytest.fixture
def fuzz_node(services: RunServices, tmp_path: Path) -> Iterator[FuzzNode]:
    """A `backchannel serve` process; after the test, its log and `/healthz` record are checked."""
    for node in running_node(
        database_url=services.database_url,
        redis_prefix=services.redis_prefix,
        jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path,
    ):
        yield node
        node.assert_healthy()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many fuzz cases ran."""
    if COUNTER.cases:
        total = sum(COUNTER.cases.values())
        parts = ", ".join(f"{name} {n}" for name, n in sorted(COUNTER.cases.items()))
        terminalreporter.write_line(f"fuzz cases: {total} ({parts})")
