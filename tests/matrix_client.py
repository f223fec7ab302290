"""One python-socketio combination of the client matrix, run as its own process.

`python -m tests.matrix_client async|sync websocket|polling|upgrade json|msgpack URL TOKEN
JWT_SECRET PEER_ID` (the secret mints a token that expires in ~3 s, when it is needed) prints
{"phase": "connected"} once every check before the restart has passed, then waits for the
node's restart (server:shutdown, a lost connection, reconnection) and prints the result as one
JSON line; the test (`tests/server/test_client_matrix.py`) reads it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any

import jwt
import socketio

NAMESPACES = ["/chat", "/typing", "/presence", "/ppv", "/notifications"]
WAIT = 15.0


class Recorder:
    """Thread-safe record of events per namespace (the sync client calls from its threads)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.events: list[tuple[str, str, Any]] = []

    def handler(self, namespace: str, event: str) -> Any:
        def record(*args: Any) -> None:
            with self.lock:
                self.events.append((namespace, event, args[0] if args else None))
                self.lock.notify_all()

        return record

    def count(self, namespace: str, event: str) -> int:
        with self.lock:
            return sum(1 for n, e, _ in self.events if n == namespace and e == event)

    def wait(self, namespace: str, event: str, count: int = 1) -> Any:
        with self.lock:
            if not self.lock.wait_for(lambda: self.count_unlocked(namespace, event) >= count, WAIT):
                raise TimeoutError(f"{event} on {namespace}")
            return [d for n, e, d in self.events if n == namespace and e == event][count - 1]

    def count_unlocked(self, namespace: str, event: str) -> int:
        return sum(1 for n, e, _ in self.events if n == namespace and e == event)


def _transports(transport: str) -> list[str] | None:
    return None if transport == "upgrade" else [transport]


async def _wait(recorder: Recorder, namespace: str, event: str, count: int = 1) -> Any:
    return await asyncio.to_thread(recorder.wait, namespace, event, count)


async def run(
    flavour: str, transport: str, parser: str, url: str, token: str, secret: str, peer: str
) -> dict[str, Any]:
    serializer = "msgpack" if parser == "msgpack" else "default"
    options: dict[str, Any] = {
        "reconnection_delay": 0.2,
        "reconnection_delay_max": 0.5,
        "serializer": serializer,
    }
    cls = socketio.AsyncClient if flavour == "async" else socketio.Client
    client = cls(**options)
    recorder = Recorder()
    for ns in NAMESPACES:
        for event in ("connect", "disconnect", "server:shutdown", "message:new"):
            client.on(event, recorder.handler(ns, event), namespace=ns)

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if asyncio.iscoroutine(result):
            return await result
        return result

    async def acked(event: str, data: Any, namespace: str) -> Any:
        if flavour == "async":
            return await client.call(event, data, namespace=namespace, timeout=5)
        return await asyncio.to_thread(client.call, event, data, namespace=namespace, timeout=5)

    async def connect(c: Any, namespaces: list[str], auth: Any) -> None:
        kwargs = {
            "namespaces": namespaces,
            "auth": auth,
            "transports": _transports(transport),
            "wait_timeout": 5,
        }
        if flavour == "async":
            await c.connect(url, **kwargs)
        else:
            await asyncio.to_thread(c.connect, url, **kwargs)

    result: dict[str, Any] = {"flavour": flavour, "transport": transport, "parser": parser}
    await connect(client, NAMESPACES, {"token": token})
    result["engineTransport"] = client.transport()
    result["acks"] = {ns: await acked("no:such:event", {}, ns) for ns in NAMESPACES}
    conversation = await acked("conversation:open", {"participant_ids": [peer]}, "/chat")
    sent = await acked(
        "message:send",
        {
            "conversation_id": conversation["data"]["id"],
            "client_id": f"py-{flavour}-{transport}-{parser}",
            "body": "héllo",
        },
        "/chat",
    )
    push = await _wait(recorder, "/chat", "message:new")
    result["push"] = {
        "sentOk": sent["ok"],
        "sameId": push["id"] == sent["data"]["id"],
        "body": push["body"],
    }

    for label, ns, auth in (
        ("refusedUnknown", "/nope", {"token": token}),
        ("refusedNoToken", "/chat", {}),
    ):
        refused = cls(reconnection=False, serializer=serializer)
        errors: list[Any] = []
        refused.on("connect_error", errors.append, namespace=ns)
        try:
            await connect(refused, [ns], auth)
            result[label] = {"outcome": "connected"}
            await call(refused.disconnect)
        except socketio.exceptions.ConnectionError:
            result[label] = errors[0] if errors else None

    # Token expiry on /chat of a second connection (python-socketio's `auth` is one value for
    # every namespace of a connection, so the survivor check is JS's).
    second = cls(reconnection=False, serializer=serializer)
    second_rec = Recorder()
    for event in ("session:expired", "disconnect"):
        second.on(event, second_rec.handler("/chat", event), namespace="/chat")
    sub = jwt.decode(token, options={"verify_signature": False})["sub"]
    now = int(time.time())
    short_token = jwt.encode(
        {"sub": sub, "type": "access", "iat": now, "exp": now + 3}, secret, algorithm="HS256"
    )
    await connect(second, ["/chat"], {"token": short_token})
    expired = await _wait(second_rec, "/chat", "session:expired")
    await _wait(second_rec, "/chat", "disconnect")
    result["expiry"] = {"code": expired["code"], "mainConnected": client.connected}
    await call(second.disconnect)

    print(json.dumps({"phase": "connected"}), flush=True)
    notice = await asyncio.to_thread(recorder.wait, "/chat", "server:shutdown")
    for ns in NAMESPACES:
        await _wait(recorder, ns, "connect", 2)
    result["restart"] = {
        "notice": notice,
        "ackAfter": (await acked("wallet:get", {}, "/ppv"))["ok"],
    }
    await call(client.disconnect)
    result["ok"] = True
    return result


def main() -> None:
    args = sys.argv[1:]
    try:
        result = asyncio.run(run(*args))
    except Exception as exc:
        import traceback

        result = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc()[-1500:],
        }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
