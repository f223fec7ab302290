"""Loops for the server tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop

# The websocket tests take over transports: `backchannel serve` runs uvloop, whose transports
# are not asyncio's, so those tests run on both.
_BOTH_LOOPS = {"test_engine_sockets.py", "test_websocket_frames.py"}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """asyncio's loop for every test here, and uvloop as well for the websocket tests."""
    if item.path.name in _BOTH_LOOPS:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
