"""The client matrix: every client a user may bring, over every transport, with both parsers.

socket.io-client 4.8, 4.0 and 3.1 (Node) and python-socketio's async and sync clients, each
websocket-only, polling-only and upgrading, against one real node per serializer. Every
combination runs in its own process, all at once: it connects all five namespaces on one
connection, gets an ack on each, receives a push, is refused with the contract's error object
(unknown namespace; no token), sees a token expire, and survives a SIGTERM restart of the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.processes import ServerProcess, settings_env, start_server
from tests.services import RunServices
from tests.support import Api

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "js"
JS_VERSIONS = ("4.8", "4.0", "3.1")
PY_FLAVOURS = ("async", "sync")
TRANSPORTS = ("websocket", "polling", "upgrade")
GRACE_SECONDS = 2.0
PHASE_SECONDS = 60  # every client started, checked, and its short token expired


def _node() -> str | None:
    binary = shutil.which("node")
    installed = all(
        (JS_DIR / "node_modules" / name).exists()
        for name in ("socket.io-client", "socket.io-client-3.1", "socket.io-msgpack-parser")
    )
    return binary if binary and installed else None


async def _read_json(process: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout)
    if not line:
        stderr = await process.stderr.read() if process.stderr is not None else b""
        raise AssertionError(f"client ended without output: {stderr.decode()[-2000:]}")
    parsed: dict[str, Any] = json.loads(line)
    return parsed


@pytest.mark.parametrize("parser", ["json", "msgpack"])
async def test_every_client_transport_and_parser_works_and_survives_a_restart(
    services: RunServices, tmp_path: Path, parser: str
) -> None:
    node_binary = _node()
    env = settings_env(
        database_url=services.database_url,
        redis_url=None,
        redis_prefix=services.redis_prefix,
        jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path,
    )
    env.update(
        {
            "BACKCHANNEL_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
            "BACKCHANNEL_MSGPACK": "true" if parser == "msgpack" else "false",
            "BACKCHANNEL_PING_INTERVAL_SECONDS": "2.5",
            "BACKCHANNEL_PING_TIMEOUT_SECONDS": "2",
            "BACKCHANNEL_CONNECT_RATE_LIMIT": "10000/1s",
        }
    )
    server: ServerProcess = start_server(env, tmp_path)
    first_log = ""
    processes: list[tuple[str, asyncio.subprocess.Process]] = []
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as session:
            api = Api(server.url, session)
            peer = await api.register()
            combos: list[tuple[str, list[str]]] = []
            for transport in TRANSPORTS:
                for flavour in PY_FLAVOURS:
                    combos.append(
                        (
                            f"python-{flavour}/{transport}",
                            [sys.executable, "-m", "tests.matrix_client", flavour, transport],
                        )
                    )
                if node_binary is not None:
                    for version in JS_VERSIONS:
                        combos.append(
                            (
                                f"js-{version}/{transport}",
                                [node_binary, str(JS_DIR / "matrix_check.mjs"), version, transport],
                            )
                        )
            users = [await api.register() for _ in combos]
        for (label, command), user in zip(combos, users, strict=True):
            process = await asyncio.create_subprocess_exec(
                *command,
                parser,
                server.url,
                user.access_token,
                TEST_JWT_SECRET,  # each client mints its short-lived token when it needs it
                peer.id,
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            processes.append((label, process))

        phases = await asyncio.gather(*(_read_json(p, PHASE_SECONDS) for _, p in processes))
        failed_early = {
            label: phase
            for (label, _), phase in zip(processes, phases, strict=True)
            if phase.get("phase") != "connected"
        }
        assert not failed_early, failed_early

        started = time.monotonic()
        assert await server.terminate(timeout=GRACE_SECONDS + 10) == 0, server.log()
        stopped_in = time.monotonic() - started
        first_log = server.log()
        (tmp_path / "restarted").mkdir()
        server = start_server(env, tmp_path / "restarted", port=server.port)
        await server.wait_ready()
        results = await asyncio.gather(*(_read_json(p, 60) for _, p in processes))
    finally:
        for _, process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        await server.terminate()

    # Bounded, whatever is open: the drain takes at most the grace period, then aiohttp waits
    # at most as long again for HTTP handlers (before: never, with a long-poll open).
    assert stopped_in < 2 * GRACE_SECONDS + 1.5, (stopped_in, first_log[-3000:])
    problems: dict[str, Any] = {}
    for (label, _), result in zip(processes, results, strict=True):
        try:
            _check(label, result)
        except AssertionError as exc:
            problems[label] = f"{exc}: {result}"
    assert not problems, json.dumps(problems, indent=1)
    if node_binary is None:
        pytest.skip("node and tests/js/node_modules are needed for the JS half of the matrix")


def _check(label: str, result: dict[str, Any]) -> None:
    assert result.get("ok") is True, result.get("error")
    transport = result["transport"]
    if transport != "upgrade":
        assert result["engineTransport"] == transport
    assert {ns: ack["error"]["code"] for ns, ack in result["acks"].items()} == dict.fromkeys(
        ["/chat", "/typing", "/presence", "/ppv", "/notifications"], "invalid"
    )
    assert result["push"] == {"sentOk": True, "sameId": True, "body": "héllo"}
    assert result["refusedUnknown"] == {
        "message": "no namespace /nope",
        "data": {"code": "not_found", "message": "no namespace /nope"},
    }
    assert result["refusedNoToken"]["data"]["code"] == "unauthorized"
    assert result["expiry"]["code"] == "token_expired"
    if label.startswith("js-"):
        assert result["expiry"]["reason"] == "io server disconnect"
        assert result["expiry"]["survivorDropped"] is None  # the other namespace stayed
        assert result["expiry"]["survivorAcked"] is True
    else:
        assert result["expiry"]["mainConnected"] is True
    assert result["restart"]["notice"] == {"reason": "server shutting down", "reconnect": True}
    assert result["restart"]["ackAfter"] is True
