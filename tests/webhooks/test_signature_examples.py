"""The docs' verification examples, run against a real delivery: Python and Node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.chat_support import open_dm
from tests.support import Api, Sockets
from tests.webhooks.conftest import subscribe
from tests.webhooks.receiver import Receiver, documented_example, documented_verify
from tests.webhooks.test_delivery import send


async def _one_delivery(api: Api, sockets: Sockets, key: str, receiver: Receiver) -> bytes:
    await subscribe(api, key, receiver, ["message.created"])
    creator, fan = await api.register(role="creator"), await api.register()
    await send(sockets, creator, await open_dm(sockets, creator, fan), "signed")
    await receiver.wait_delivered("message.created")
    return receiver.received[0].body


async def test_the_python_example_accepts_a_real_delivery_and_refuses_forgeries(
    api: Api, sockets: Sockets, key: str, receiver: Receiver
) -> None:
    body = await _one_delivery(api, sockets, key, receiver)
    header = _header_of(receiver)
    verify = documented_verify()
    assert verify(receiver.secret, body, header)
    assert not verify(receiver.secret, body.replace(b"message.created", b"message.deleted"), header)
    assert not verify("whsec_wrong", body, header)
    stale = "t=1000000000," + header.split(",", 1)[1]
    assert not verify(receiver.secret, body, stale), "an old timestamp is refused"
    assert not verify(receiver.secret, body, "garbage")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_the_node_example_accepts_a_real_delivery_and_refuses_forgeries(
    api: Api, sockets: Sockets, key: str, receiver: Receiver, tmp_path: Path
) -> None:
    body = await _one_delivery(api, sockets, key, receiver)
    header = _header_of(receiver)
    (tmp_path / "verify.js").write_text(documented_example("javascript"))
    (tmp_path / "check.js").write_text(
        "const { verify } = require('./verify.js');\n"
        "const [secret, header, file] = process.argv.slice(2);\n"
        "const body = require('node:fs').readFileSync(file);\n"
        "console.log(JSON.stringify(verify(secret, body, header)));\n"
    )
    (tmp_path / "good").write_bytes(body)
    (tmp_path / "forged").write_bytes(body.replace(b"message.created", b"message.deleted"))

    def node_says(secret: str, header: str, file: str) -> bool:
        out = subprocess.run(
            ["node", "check.js", secret, header, file],
            cwd=tmp_path,
            capture_output=True,
            check=True,
            timeout=30,
        )
        result: bool = json.loads(out.stdout)
        return result

    assert node_says(receiver.secret, header, "good")
    assert not node_says(receiver.secret, header, "forged")
    assert not node_says("whsec_wrong", header, "good")
    assert not node_says(receiver.secret, "t=1000000000," + header.split(",", 1)[1], "good")


def _header_of(receiver: Receiver) -> str:
    assert receiver.headers, "the receiver keeps the signature headers"
    return receiver.headers[0]
