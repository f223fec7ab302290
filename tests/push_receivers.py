"""Local stand-ins for the push services that check the real protocols.

- `WebPushReceiver`: a push service (RFC 8030) that verifies the VAPID JWT (RFC 8292) against
  the server's application server key and decrypts the aes128gcm payload (RFC 8291) with the
  private key of a browser-like subscription (`BrowserSubscription`).
- `FcmReceiver`: Google's OAuth token endpoint (verifies the RS256 JWT-bearer assertion with
  the service account's public key) and FCM HTTP v1 `messages:send` (checks the bearer and the
  message's shape).
- `ApnsReceiver`: APNs over HTTP/2 (h2c, prior knowledge) that checks the ES256 provider token,
  `apns-topic`, `apns-push-type` and `apns-collapse-id`.

Each records what it accepted (and every protocol violation, in `errors`), and can be told to
answer one device with a given status (`answer(...)`). Keys are generated at run time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import http_ece
import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from multidict import CIMultiDict

BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def b64url(raw: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Scripted:
    """An answer a receiver gives one device instead of accepting the push."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None  # None: every time; else this many times, then accept again


class _Scripts:
    def __init__(self) -> None:
        self._by_key: dict[str, Scripted] = {}

    def set(self, key: str, scripted: Scripted) -> None:
        self._by_key[key] = scripted

    def take(self, key: str) -> Scripted | None:
        scripted = self._by_key.get(key)
        if scripted is None:
            return None
        if scripted.times is not None:
            scripted.times -= 1
            if scripted.times <= 0:
                del self._by_key[key]
        return scripted


def _body(scripted: Scripted) -> bytes:
    if scripted.body is None:
        return b""
    if isinstance(scripted.body, bytes):
        return scripted.body
    if isinstance(scripted.body, str):
        return scripted.body.encode()
    return json.dumps(scripted.body).encode()


# --- Web Push -----------------------------------------------------------------------------


@dataclass
class BrowserSubscription:
    """What a browser holds for a push subscription: a P-256 key pair and a 16-byte secret."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes

    @classmethod
    def create(cls, endpoint: str) -> BrowserSubscription:
        """A fresh subscription at `endpoint`."""
        return cls(endpoint, ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def id(self) -> str:
        """The last path segment of the endpoint (the receiver's key for it)."""
        return self.endpoint.rsplit("/", 1)[1]

    def json(self) -> dict[str, Any]:
        """`PushSubscription.toJSON()`: `{endpoint, keys: {p256dh, auth}}`."""
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth_secret)},
        }

    def decrypt(self, body: bytes) -> bytes:
        """Decrypt an aes128gcm push message (RFC 8291) as the browser would."""
        decrypted: bytes = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth_secret, version="aes128gcm"
        )
        return decrypted


@dataclass
class WebPushReceived:
    """One accepted Web Push message."""

    subscription_id: str
    headers: CIMultiDict[str]  # case-insensitive, as HTTP headers are
    claims: dict[str, Any]
    jwt: str
    payload: dict[str, Any]


class WebPushReceiver:
    """A push service at `http://127.0.0.1:<port>/push/<id>`."""

    def __init__(self) -> None:
        self.received: list[WebPushReceived] = []
        self.errors: list[str] = []
        self.vapid_public_key: str | None = None  # base64url point; set from the server's route
        self._subscriptions: dict[str, BrowserSubscription] = {}
        self._scripts = _Scripts()
        app = web.Application()
        app.router.add_post("/push/{id}", self._push)
        self._server = TestServer(app, host="127.0.0.1")

    async def start(self) -> None:
        """Listen on a free port."""
        await self._server.start_server()

    async def close(self) -> None:
        """Stop listening."""
        await self._server.close()

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:<port>`: the VAPID `aud` the server must use."""
        return str(self._server.make_url("")).rstrip("/")

    def subscribe(self) -> BrowserSubscription:
        """A new browser subscription whose endpoint is this receiver."""
        subscription = BrowserSubscription.create(f"{self.origin}/push/{secrets.token_hex(8)}")
        self._subscriptions[subscription.id] = subscription
        return subscription

    def answer(self, subscription: BrowserSubscription, scripted: Scripted) -> None:
        """Answer pushes to `subscription` with `scripted` instead of accepting them."""
        self._scripts.set(subscription.id, scripted)

    def _refuse(self, problem: str, status: int = 400) -> web.Response:
        self.errors.append(problem)
        return web.Response(status=status, text=problem)

    async def _push(self, request: web.Request) -> web.Response:
        subscription = self._subscriptions.get(request.match_info["id"])
        if subscription is None:
            return web.Response(status=404, text="no such subscription")
        body = await request.read()
        match = re.fullmatch(
            r"vapid t=([^,]+),\s*k=([A-Za-z0-9_-]+)", request.headers.get("Authorization", "")
        )
        if match is None:
            return self._refuse("Authorization is not `vapid t=..,k=..`", 401)
        token, key = match.groups()
        if self.vapid_public_key is not None and key != self.vapid_public_key:
            return self._refuse("k is not the server's application server key", 401)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        try:
            claims = jwt.decode(
                token,
                public,
                algorithms=["ES256"],
                audience=self.origin,
                options={"require": ["exp", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            return self._refuse(f"VAPID JWT: {exc}", 401)
        if claims["exp"] > time.time() + 24 * 3600:
            return self._refuse("VAPID exp is more than 24 h ahead", 401)
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            return self._refuse("VAPID sub is not a mailto: or https: URI", 401)
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return self._refuse("Content-Encoding is not aes128gcm")
        if not request.headers.get("TTL", "").isdigit():
            return self._refuse("TTL is missing")
        if request.headers.get("Urgency", "normal") not in {"very-low", "low", "normal", "high"}:
            return self._refuse("bad Urgency")
        topic = request.headers.get("Topic")
        if topic is not None and (len(topic) > 32 or not BASE64URL.match(topic)):
            return self._refuse("Topic is not <= 32 base64url characters")
        try:
            payload = json.loads(subscription.decrypt(body))
        except Exception as exc:
            return self._refuse(f"payload does not decrypt: {exc!r}")
        scripted = self._scripts.take(subscription.id)
        if scripted is not None:
            return web.Response(
                status=scripted.status, body=_body(scripted), headers=scripted.headers
            )
        self.received.append(
            WebPushReceived(subscription.id, CIMultiDict(request.headers), claims, token, payload)
        )
        return web.Response(
            status=201, headers={"Location": f"{self.origin}/message/{len(self.received)}"}
        )


# --- FCM ----------------------------------------------------------------------------------


@dataclass
class FcmReceived:
    """One accepted `messages:send`."""

    project_id: str
    access_token: str
    message: dict[str, Any]


class FcmReceiver:
    """Google's token endpoint (`/token`) and FCM HTTP v1 (`/v1/projects/<id>/messages:send`)."""

    def __init__(self, project_id: str = "backchannel-test") -> None:
        self.project_id = project_id
        self.client_email = f"push@{project_id}.iam.gserviceaccount.com"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.received: list[FcmReceived] = []
        self.errors: list[str] = []
        self.token_requests = 0
        self.expires_in = 3600
        self.token_answer: Scripted | None = None  # the token endpoint's answer instead
        self._tokens: dict[str, float] = {}  # access token -> expiry
        self._scripts = _Scripts()
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        self._server = TestServer(app, host="127.0.0.1")

    async def start(self) -> None:
        """Listen on a free port."""
        await self._server.start_server()

    async def close(self) -> None:
        """Stop listening."""
        await self._server.close()

    @property
    def base_url(self) -> str:
        """`BACKCHANNEL_FCM_BASE_URL` for this receiver."""
        return str(self._server.make_url("")).rstrip("/")

    @property
    def token_uri(self) -> str:
        """The service account's `token_uri`."""
        return f"{self.base_url}/token"

    def service_account(self) -> dict[str, Any]:
        """A service-account JSON whose key this receiver trusts."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "1234567890",
            "token_uri": self.token_uri,
        }

    def answer(self, token: str, scripted: Scripted) -> None:
        """Answer sends to the registration `token` with `scripted`."""
        self._scripts.set(token, scripted)

    def revoke_tokens(self) -> None:
        """Forget every access token issued so far (the next send gets 401)."""
        self._tokens.clear()

    def _refuse(self, problem: str, status: int = 400) -> web.Response:
        self.errors.append(problem)
        return web.json_response({"error": {"code": status, "message": problem}}, status=status)

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = parse_qs((await request.read()).decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return self._refuse("grant_type is not jwt-bearer")
        try:
            claims = jwt.decode(
                form["assertion"][0],
                self._key.public_key(),
                algorithms=["RS256"],
                audience=self.token_uri,
                issuer=self.client_email,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except (KeyError, jwt.PyJWTError) as exc:
            return self._refuse(f"assertion: {exc!r}")
        if claims.get("scope") != "https://www.googleapis.com/auth/firebase.messaging":
            return self._refuse("scope is not firebase.messaging")
        if claims["exp"] - claims["iat"] > 3600:
            return self._refuse("assertion lives longer than an hour")
        if self.token_answer is not None:
            scripted = self.token_answer
            return web.Response(
                status=scripted.status, body=_body(scripted), headers=scripted.headers
            )
        token = f"ya29.{secrets.token_urlsafe(24)}"
        self._tokens[token] = time.time() + self.expires_in
        return web.json_response(
            {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        )

    async def _send(self, request: web.Request) -> web.Response:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self._tokens.get(bearer, 0) < time.time():
            self.errors.append("send without a valid access token")
            return web.json_response(
                {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad token"}},
                status=401,
            )
        if request.match_info["project"] != self.project_id:
            return self._refuse("wrong project")
        try:
            message = (await request.json())["message"]
            problem = _fcm_shape(message)
        except (ValueError, KeyError, TypeError) as exc:
            problem = f"not a message: {exc!r}"
        if problem:
            return self._refuse(problem)
        scripted = self._scripts.take(message["token"])
        if scripted is not None:
            return web.Response(
                status=scripted.status,
                body=_body(scripted),
                headers={"Content-Type": "application/json", **scripted.headers},
            )
        self.received.append(FcmReceived(self.project_id, bearer, message))
        return web.json_response(
            {"name": f"projects/{self.project_id}/messages/{len(self.received)}"}
        )


def _fcm_shape(message: dict[str, Any]) -> str | None:
    """What is wrong with a v1 `message`, if anything."""
    if not isinstance(message.get("token"), str) or not message["token"]:
        return "message.token must be a string"
    notification = message.get("notification", {})
    if not isinstance(notification.get("title"), str):
        return "message.notification.title must be a string"
    if "body" in notification and not isinstance(notification["body"], str):
        return "message.notification.body must be a string"
    data = message.get("data", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return "message.data must map strings to strings"
    android = message.get("android", {})
    if "collapse_key" in android and not isinstance(android["collapse_key"], str):
        return "message.android.collapse_key must be a string"
    allowed = {"token", "notification", "data", "android", "apns", "webpush", "fcm_options"}
    if set(message) - allowed:
        return f"unknown message fields {sorted(set(message) - allowed)}"
    return None


def fcm_error(
    status: int, code: str, error_code: str | None = None, field_name: str | None = None
) -> dict[str, Any]:
    """An FCM v1 error body (google.rpc.Status with FcmError / BadRequest details)."""
    details: list[dict[str, Any]] = []
    if error_code is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        )
    if field_name is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field_name, "description": "Invalid value"}],
            }
        )
    return {"error": {"code": status, "message": code.lower(), "status": code, "details": details}}


# --- APNs ---------------------------------------------------------------------------------


@dataclass
class ApnsReceived:
    """One accepted APNs request."""

    device_token: str
    headers: dict[str, str]
    jwt: str
    payload: dict[str, Any]


class ApnsReceiver:
    """APNs's `/3/device/<token>` over HTTP/2 without TLS (h2c with prior knowledge)."""

    def __init__(
        self,
        key_id: str = "ABC123DEFG",
        team_id: str = "TEAM123456",
        topic: str = "com.example.fans",
    ) -> None:
        self.key_id = key_id
        self.team_id = team_id
        self.topic = topic
        self.signing_key = ec.generate_private_key(ec.SECP256R1())
        self.received: list[ApnsReceived] = []
        self.errors: list[str] = []
        self.expired_tokens: set[str] = set()  # provider tokens to refuse as ExpiredProviderToken
        self._scripts = _Scripts()
        self._server: asyncio.Server | None = None
        self.connections: set[asyncio.Transport] = set()

    async def start(self) -> None:
        """Listen on a free port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _H2Server(self), "127.0.0.1", 0)

    async def close(self) -> None:
        """Stop listening and drop the connections."""
        if self._server is not None:
            self._server.close()
            for transport in list(self.connections):
                transport.close()
            await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        """`BACKCHANNEL_APNS_BASE_URL` for this receiver."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def write_key(self, folder: Path) -> Path:
        """The signing key as Apple hands it out (`AuthKey_<kid>.p8`), in `folder`."""
        path = folder / f"AuthKey_{self.key_id}.p8"
        path.write_bytes(
            self.signing_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    def answer(self, device_token: str, scripted: Scripted) -> None:
        """Answer pushes to `device_token` with `scripted`."""
        self._scripts.set(device_token, scripted)

    def handle(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request: (status, headers, body)."""
        apns_id = secrets.token_hex(16)

        def reason(status: int, why: str) -> tuple[int, list[tuple[str, str]], bytes]:
            return status, [("apns-id", apns_id)], json.dumps({"reason": why}).encode()

        def refuse(status: int, why: str, problem: str) -> tuple[int, list[tuple[str, str]], bytes]:
            self.errors.append(problem)
            return reason(status, why)

        path = headers.get(":path", "")
        if headers.get(":method") != "POST" or not path.startswith("/3/device/"):
            return refuse(404, "BadPath", f"bad request line {headers.get(':method')} {path}")
        device_token = unquote(path.removeprefix("/3/device/"))
        authorization = headers.get("authorization", "")
        if not authorization.startswith("bearer "):
            return refuse(403, "MissingProviderToken", "no bearer provider token")
        token = authorization.removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.signing_key.public_key(),
                algorithms=["ES256"],
                issuer=self.team_id,
                options={"require": ["iat", "iss"]},
            )
        except jwt.PyJWTError as exc:
            return refuse(403, "InvalidProviderToken", f"provider token: {exc!r}")
        if header.get("kid") != self.key_id:
            return refuse(403, "InvalidProviderToken", "provider token kid is not the key id")
        if claims["iat"] < time.time() - 3600:
            return refuse(403, "ExpiredProviderToken", "provider token older than an hour")
        if token in self.expired_tokens:
            return reason(403, "ExpiredProviderToken")
        if headers.get("apns-topic") != self.topic:
            return refuse(400, "TopicDisallowed", f"apns-topic {headers.get('apns-topic')!r}")
        if headers.get("apns-push-type") != "alert":
            return refuse(400, "InvalidPushType", "apns-push-type is not alert")
        collapse = headers.get("apns-collapse-id")
        if collapse is not None and len(collapse.encode()) > 64:
            return refuse(400, "BadCollapseId", "apns-collapse-id longer than 64 bytes")
        try:
            payload = json.loads(body)
            alert = payload["aps"]["alert"]
            assert isinstance(alert["title"], str)
        except (ValueError, KeyError, TypeError, AssertionError):
            return refuse(400, "PayloadEmpty", "payload has no aps.alert.title")
        if len(body) > 4096:
            return refuse(413, "PayloadTooLarge", "payload over 4 KB")
        scripted = self._scripts.take(device_token)
        if scripted is not None:
            extra = list(scripted.headers.items())
            return scripted.status, [("apns-id", apns_id), *extra], _body(scripted)
        self.received.append(ApnsReceived(device_token, headers, token, payload))
        return 200, [("apns-id", apns_id)], b""


class _H2Server(asyncio.Protocol):
    """A minimal HTTP/2 server connection (the `h2` library's state machine)."""

    def __init__(self, receiver: ApnsReceiver) -> None:
        self._receiver = receiver
        self._conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self._streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._receiver.connections.add(transport)
        self._conn.initiate_connection()
        transport.write(self._conn.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._receiver.connections.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._receiver.errors.append(f"HTTP/2 protocol error: {exc!r}")
            self._transport.write(self._conn.data_to_send())
            self._transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._streams[event.stream_id] = (dict(event.headers), bytearray())  # type: ignore[arg-type]
            elif isinstance(event, h2.events.DataReceived):
                self._streams[event.stream_id][1].extend(event.data)
                self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                headers, body = self._streams.pop(event.stream_id)
                status, extra, content = self._receiver.handle(headers, bytes(body))
                response = [(":status", str(status)), *extra, ("content-length", str(len(content)))]
                if content:
                    response.append(("content-type", "application/json"))
                self._conn.send_headers(event.stream_id, response, end_stream=not content)
                if content:
                    self._conn.send_data(event.stream_id, content, end_stream=True)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._transport.close()
        self._transport.write(self._conn.data_to_send())


# --- wiring ---------------------------------------------------------------------------------


def configure(
    settings: Any,
    folder: Path,
    *,
    fcm: FcmReceiver | None = None,
    apns: ApnsReceiver | None = None,
) -> Any:
    """`settings` (a `Settings`) with FCM and APNs pointed at these receivers.

    Web Push needs no setting: a subscription's endpoint names its receiver.
    """
    from pydantic import SecretStr

    update: dict[str, Any] = {}
    if fcm is not None:
        update["fcm_credentials"] = SecretStr(json.dumps(fcm.service_account()))
        update["fcm_base_url"] = fcm.base_url
    if apns is not None:
        update.update(
            apns_key_file=apns.write_key(folder),
            apns_key_id=apns.key_id,
            apns_team_id=apns.team_id,
            apns_topic=apns.topic,
            apns_base_url=apns.base_url,
        )
    return settings.model_copy(update=update)
