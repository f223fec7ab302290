"""Random websocket frame sequences: the server follows RFC 6455 or closes with the right code.

Each example opens a raw websocket, sends a drawn sequence of frames (any opcode, FIN, mask,
reserved bits, sizes around the control-frame limit, close bodies valid and not, pings between
fragments), then a probe ping. A small model of the rules says what must happen: the first
violation closes the connection with its code (1002 protocol, 1007 data, 1000 for a close
frame that is well formed), and a sequence without one leaves the connection open, answering
every ping with its payload. Data frames only ever carry Engine.IO PONG (`3`), so a whole
message is harmless.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.support import COUNTER, EXAMPLES, FuzzNode
from tests.server.test_engine_sockets import frame

# A live node in its own process (tests/fuzz/support.py).
pytestmark = pytest.mark.slow

# Close bodies and the code the server must answer each with.
_CLOSES = {
    b"": 1000,
    (1000).to_bytes(2, "big"): 1000,
    (1001).to_bytes(2, "big") + b"going": 1000,
    (4999).to_bytes(2, "big"): 1000,
    b"\x03": 1002,
    (1005).to_bytes(2, "big"): 1002,
    (999).to_bytes(2, "big"): 1002,
    (5000).to_bytes(2, "big"): 1002,
    (1000).to_bytes(2, "big") + b"\xc3": 1007,
}


@dataclass(frozen=True)
class Frame:
    """One client frame as drawn."""

    opcode: int
    payload: bytes
    fin: bool = True
    mask: bool = True
    rsv: int = 0

    def encode(self) -> bytes:
        return frame(self.opcode, self.payload, fin=self.fin, mask=self.mask, rsv=self.rsv)


_frames = st.one_of(
    # the common, legal shapes, drawn most often
    st.builds(Frame, st.just(0x1), st.just(b"3"), st.booleans()),
    st.builds(Frame, st.just(0x2), st.just(b"3"), st.booleans()),
    st.builds(Frame, st.just(0x0), st.just(b""), st.booleans()),
    st.builds(Frame, st.just(0x9), st.binary(max_size=125)),
    st.builds(Frame, st.just(0xA), st.binary(max_size=8)),
    # the rule breakers
    st.builds(Frame, st.just(0x8), st.sampled_from(sorted(_CLOSES))),
    st.builds(Frame, st.just(0x9), st.binary(min_size=126, max_size=130)),
    st.builds(Frame, st.sampled_from([0x8, 0x9, 0xA]), st.just(b""), st.just(False)),
    st.builds(
        Frame,
        st.sampled_from([0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]),
        st.just(b""),
    ),
    st.builds(Frame, st.just(0x1), st.just(b"3"), st.just(True), st.just(False)),
    st.builds(
        Frame,
        st.just(0x1),
        st.just(b"3"),
        st.just(True),
        st.just(True),
        st.sampled_from([0x10, 0x20, 0x40]),
    ),
    st.builds(Frame, st.just(0x1), st.just(b"\xff")),
)


def expected(frames: list[Frame]) -> tuple[int | None, int]:
    """(the close code the sequence must end with, or None; how many frames are processed)."""
    in_message = False
    for index, f in enumerate(frames):
        if f.rsv or not f.mask:
            return 1002, index
        if f.opcode >= 0x8:
            if not f.fin or len(f.payload) > 125 or f.opcode > 0xA:
                return 1002, index
            if f.opcode == 0x8:
                return _CLOSES[f.payload], index
            continue
        if f.opcode not in (0x0, 0x1, 0x2):
            return 1002, index
        if f.opcode == 0x0:
            if not in_message:
                return 1002, index
            in_message = not f.fin
            continue
        if in_message:
            return 1002, index
        if f.opcode == 0x1 and f.fin and f.payload == b"\xff":
            return 1007, index
        in_message = not f.fin
    return None, len(frames)


async def _open(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


async def _receive(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(size)


async def _exchange(url: str, frames: list[Frame]) -> None:
    code, processed = expected(frames)
    # Send only what the server reads: bytes after a close would reset the connection.
    sent = frames[: processed + 1] if code is not None else frames
    reader, writer = await _open(url)
    try:
        probe = b"probe-" + os.urandom(4).hex().encode()
        data = b"".join(f.encode() for f in sent)
        if code is None:
            data += frame(0x9, probe)
        writer.write(data)
        await writer.drain()
        pings = [f.payload for f in sent if f.opcode == 0x9]
        while True:
            opcode, payload = await asyncio.wait_for(_receive(reader), 5)
            if opcode == 0x8:
                got = int.from_bytes(payload[:2], "big")
                assert code is not None, f"closed with {got} after a legal sequence {frames}"
                assert got == code, f"closed with {got}, expected {code}: {frames}"
                return
            if opcode == 0xA:
                if payload == probe:
                    assert code is None, f"still open, expected close {code}: {frames}"
                    return
                assert pings and payload == pings.pop(0), (payload, frames)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def test_random_frame_sequences_follow_rfc_6455_or_close_with_its_code(
    fuzz_node: FuzzNode,
) -> None:
    loop = asyncio.new_event_loop()

    @settings(
        max_examples=EXAMPLES * 25,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(frames=st.lists(_frames, min_size=1, max_size=12))
    def run(frames: list[Frame]) -> None:
        loop.run_until_complete(_exchange(fuzz_node.url, frames))
        COUNTER.add("frames")

    try:
        run()
    finally:
        loop.close()
