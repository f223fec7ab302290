"""APNs over HTTP/2 with token (ES256 JWT) authentication, through `httpx`."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from backchannel.persistence.devices import Device
from backchannel.push.answers import answer, no_answer
from backchannel.push.messages import PushMessage, PushResult

PRODUCTION_URL = "https://api.push.apple.com"
SANDBOX_URL = "https://api.sandbox.push.apple.com"
# Apple refuses tokens older than an hour and refreshes more often than every 20 minutes.
TOKEN_REUSE = 40 * 60.0
GONE_REASONS = frozenset({"BadDeviceToken", "Unregistered"})
MAX_COLLAPSE_ID = 64


def collapse_id(key: str) -> str:
    """`apns-collapse-id` is at most 64 bytes: longer keys are hashed (hex, 64 chars)."""
    if len(key.encode()) <= MAX_COLLAPSE_ID:
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """The .p8 signing key (a P-256 key in PKCS#8 PEM)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("BACKCHANNEL_APNS_KEY_FILE must hold a P-256 (.p8) key")
    return key


class ApnsProvider:
    """Sends alerts to iOS devices."""

    platform = "apns"

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        key_id: str,
        team_id: str,
        topic: str,
        base_url: str,
        timeout: float = 10.0,
        verify: Any = True,
    ) -> None:
        self._key = key
        self._key_id = key_id
        self._team_id = team_id
        self._topic = topic
        self._base_url = base_url.rstrip("/")
        # http1=False: HTTP/2 only, so a plain-http (h2c) test receiver gets prior knowledge.
        self._client = httpx.AsyncClient(http1=False, http2=True, timeout=timeout, verify=verify)
        self._token: tuple[str, float] | None = None
        self.tokens_signed = 0

    def provider_token(self, *, now: float | None = None) -> str:
        """The ES256 provider token (kid = key id, iss = team, iat), reused ~40 minutes."""
        now = time.time() if now is None else now
        if self._token is not None and self._token[1] > now:
            return self._token[0]
        token = jwt.encode(
            {"iss": self._team_id, "iat": int(now)},
            self._key,
            algorithm="ES256",
            headers={"kid": self._key_id},
        )
        self._token = (token, now + TOKEN_REUSE)
        self.tokens_signed += 1
        return token

    def body(self, message: PushMessage) -> dict[str, Any]:
        """`{"aps": {alert, badge}, ...the message fields}`."""
        alert: dict[str, str] = {"title": message.title}
        if message.body is not None:
            alert["body"] = message.body
        return {"aps": {"alert": alert, "badge": message.badge}, **message.payload()}

    async def send(self, device: Device, message: PushMessage) -> PushResult:
        """POST /3/device/<token>; an expired provider token is signed again once."""
        content = json.dumps(self.body(message), separators=(",", ":")).encode()
        for attempt in (1, 2):
            headers = {
                "authorization": f"bearer {self.provider_token()}",
                "apns-topic": self._topic,
                "apns-push-type": "alert",
                "apns-priority": "10",
                "content-type": "application/json",
            }
            if message.collapse_key:
                headers["apns-collapse-id"] = collapse_id(message.collapse_key)
            try:
                response = await self._client.post(
                    f"{self._base_url}/3/device/{quote(device.token, safe='')}",
                    content=content,
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                return no_answer(exc)
            reason = _reason(response.text)
            if response.status_code == 403 and reason == "ExpiredProviderToken" and attempt == 1:
                self._token = None
                continue
            break
        status = response.status_code
        gone = status == 410 or (status == 400 and reason in GONE_REASONS)
        detail = reason or response.headers.get("apns-id", "") or response.text
        return answer(status, response.headers, detail, gone=gone)

    async def close(self) -> None:
        """Close the HTTP/2 connections."""
        await self._client.aclose()


def _reason(text: str) -> str:
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        return ""
    return str(body.get("reason", "")) if isinstance(body, dict) else ""
