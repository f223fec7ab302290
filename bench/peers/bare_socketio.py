"""Peer (a): python-socketio + aiohttp + uvloop as the library ships, no auth, no persistence.

The same events and shapes as Backchannel: the ceiling of our stack before we add anything.
Usage: python bare_socketio.py PORT
"""

from __future__ import annotations

import itertools
import sys
from datetime import UTC, datetime
from typing import Any

import socketio
import uvloop
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", transports=["websocket"])
app = web.Application()
sio.attach(app)
ids = itertools.count(1)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


app.router.add_get("/healthz", healthz)


async def _join(sid: str, namespace: str, auth: Any) -> None:
    auth = auth if isinstance(auth, dict) else {}
    user_id = str(auth.get("user_id") or sid)
    await sio.save_session(sid, {"user_id": user_id}, namespace=namespace)
    await sio.enter_room(sid, f"user:{user_id}", namespace=namespace)
    await sio.enter_room(
        sid, f"subscribers:{auth.get('creator_id') or 'bench-creator'}", namespace=namespace
    )


@sio.on("connect", namespace="/chat")
async def chat_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    await _join(sid, "/chat", auth)


@sio.on("connect", namespace="/ppv")
async def ppv_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    await _join(sid, "/ppv", auth)


@sio.on("message:send", namespace="/chat")
async def send(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    session = await sio.get_session(sid, namespace="/chat")
    n = next(ids)
    message = {
        "id": str(n),
        "conversation_id": data["conversation_id"],
        "seq": n,
        "sender_id": session["user_id"],
        "client_id": data["client_id"],
        "created_at": datetime.now(UTC).isoformat(),
        "body": data.get("body"),
        "media": [],
        "price_cents": None,
        "currency": "usd",
        "locked": False,
    }
    rooms = [f"user:{m}" for m in str(data["conversation_id"]).split(" ")]
    await sio.emit("message:new", message, room=rooms, namespace="/chat")
    return {"ok": True, "data": message}


@sio.on("bench:broadcast", namespace="/chat")
async def room_broadcast(sid: str, data: Any) -> dict[str, Any]:
    session = await sio.get_session(sid, namespace="/chat")
    room = f"subscribers:{session['user_id']}"
    await sio.emit("bench:news", data, room=room, skip_sid=sid, namespace="/chat")
    return {"ok": True, "data": None}


@sio.on("ppv:broadcast", namespace="/ppv")
async def ppv_broadcast(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    # What Backchannel sends: one locked rendering to the creator's subscribers room.
    session = await sio.get_session(sid, namespace="/ppv")
    n = str(next(ids))
    payload = {
        "broadcast_id": n,
        "sender_id": session["user_id"],
        "client_id": data["client_id"],
        "created_at": datetime.now(UTC).isoformat(),
        "body": None,
        "media": [],
        "price_cents": data["price_cents"],
        "currency": data.get("currency", "usd"),
        "locked": True,
        "preview": {"text": data.get("preview_text"), "media_count": 0},
    }
    room = f"subscribers:{session['user_id']}"
    await sio.emit("message:broadcast", payload, room=room, namespace="/chat")
    return {"ok": True, "data": {"broadcast_id": n, "recipients": 0}}


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8091
    web.run_app(
        app, host="127.0.0.1", port=port, loop=uvloop.new_event_loop(), print=None, access_log=None
    )
