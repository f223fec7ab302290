"""Every namespace's events, driven with hostile payloads: each one with an ack id gets one ack.

Names are the namespace's own events, reserved names, random text and values that are not
strings; payloads are any JSON (unicode, NUL, lone surrogates, huge integers, deep nesting),
dictionaries shaped like the event's model with hostile values, or raw text that is not JSON
or is nested thousands of levels. Every ack must arrive within 5 s and be the contract's
envelope, never `internal`; the node's log must stay free of tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backchannel.handlers.registry import NAMESPACE_CLASSES
from backchannel.server.socket_guard import RESERVED_EVENTS
from tests.conftest import TEST_JWT_SECRET
from tests.fuzz.support import ACK_TIMEOUT, COUNTER, EXAMPLES, FuzzNode
from tests.raw_socketio import RawSocketIO

# A live node in its own process (tests/fuzz/support.py).
pytestmark = pytest.mark.slow


def _events() -> dict[str, dict[str, list[str]]]:
    """namespace -> event -> the field names of its model."""
    found: dict[str, dict[str, list[str]]] = {}
    for cls in NAMESPACE_CLASSES:
        found[cls.path.value] = {
            name: sorted(spec.model.model_fields) if spec.model is not None else []
            for name, spec in cls.event_specs().items()
        }
    return found


EVENTS = _events()

_text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "\u0000", "a\u0000b", "\U0001f600" * 50, "x" * 5000, "1", "-1", "null"]
)
_ints = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1]
)
_scalars = (
    st.none() | st.booleans() | _ints | st.floats(allow_nan=False, allow_infinity=False) | _text
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _shaped(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={name: _json for name in fields})


def _names(namespace: str) -> st.SearchStrategy[Any]:
    own = sorted(EVENTS[namespace])
    return (
        st.sampled_from(own)
        | st.sampled_from(sorted(RESERVED_EVENTS))
        | _text
        | st.integers()
        | st.lists(st.sampled_from(own), max_size=2)
        | st.dictionaries(_text, _text, max_size=2)
        | st.none()
    )


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@st.composite
def _packet_body(draw: st.DrawFn) -> tuple[str, str]:
    """(namespace, the packet text after the ack id)."""
    namespace = draw(st.sampled_from(sorted(EVENTS)))
    name = draw(_names(namespace))
    kind = draw(st.sampled_from(["json", "shaped", "deep", "broken", "several"]))
    if kind == "deep":
        depth = draw(st.sampled_from([33, 100, 999, 1001, 3000, 10_000]))
        return namespace, f"[{json.dumps(name)},{_nested(depth)}]"
    if kind == "broken":
        return namespace, draw(
            # Never starting with a digit: it would read as more of the ack id.
            st.sampled_from(['["conversation:list",{', "[", "{}", '"x"', "[]", "[1e999]", "nul"])
        )
    fields = EVENTS[namespace].get(name, []) if isinstance(name, str) else []
    payload = draw(_shaped(fields) if kind == "shaped" and fields else _json)
    args = [payload]
    if kind == "several":
        args = draw(st.lists(_json, max_size=3))
    return namespace, json.dumps([name, *args], ensure_ascii=draw(st.booleans()))


def _token(user_id: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "type": "access", "iat": now, "exp": now + 3600}
    return jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")


async def _connect_all(session: aiohttp.ClientSession, url: str, user_id: str) -> RawSocketIO:
    raw = await RawSocketIO.open(session, url)
    for namespace in sorted(EVENTS):
        reply = await raw.connect_namespace(namespace, _token(user_id))
        assert reply.startswith(f"0{namespace},"), reply
    return raw


def _check_ack(ack: Any, sent: str) -> None:
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), (sent, ack)
    if not ack["ok"]:
        assert ack["error"]["code"] != "internal", (sent[:300], ack)


def test_every_event_with_an_ack_id_gets_one_ack_never_internal(fuzz_node: FuzzNode) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_fuzz(fuzz_node, loop))
    finally:
        loop.close()


async def _fuzz(fuzz_node: FuzzNode, loop: asyncio.AbstractEventLoop) -> None:
    async with aiohttp.ClientSession() as session:
        sockets = {
            "fan": await _connect_all(session, fuzz_node.url, fuzz_node.fan["user"]["id"]),
            "creator": await _connect_all(session, fuzz_node.url, fuzz_node.creator["user"]["id"]),
        }
        try:
            await asyncio.to_thread(_run_examples, fuzz_node, loop, sockets)
        finally:
            for raw in sockets.values():
                await raw.close()


def _run_examples(
    fuzz_node: FuzzNode, loop: asyncio.AbstractEventLoop, sockets: dict[str, RawSocketIO]
) -> None:
    @settings(
        max_examples=EXAMPLES * 40,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=_packet_body(), who=st.sampled_from(sorted(sockets)))
    def run(body: tuple[str, str], who: str) -> None:
        namespace, text = body
        raw = sockets[who]
        assert not raw.closed.is_set(), "the server closed a fuzzed connection"
        future = asyncio.run_coroutine_threadsafe(
            raw.emit_raw(namespace, text, timeout=ACK_TIMEOUT), loop
        )
        try:
            ack = future.result(ACK_TIMEOUT + 1)
        except TimeoutError:
            raise AssertionError(f"no ack within {ACK_TIMEOUT}s for {text[:300]!r}") from None
        COUNTER.add("socket")
        _check_ack(ack, text)

    run()
    fuzz_node.assert_healthy()
