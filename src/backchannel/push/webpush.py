"""Web Push (RFC 8030/8291/8292): an aes128gcm-encrypted POST to the subscription's endpoint.

`pywebpush` does the encryption and sends through the app's aiohttp session
(`WebPusher.send_async`), so nothing blocks the loop; `py_vapid` signs the VAPID JWT.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, VapidException
from pywebpush import WebPusher, WebPushException

from backchannel.persistence.devices import Device
from backchannel.push.answers import answer, no_answer, topic
from backchannel.push.messages import Outcome, PushMessage, PushResult

# RFC 8292 allows exp up to 24 h ahead; a token is signed for 12 h and reused for 1 h per origin.
VAPID_LIFETIME = 12 * 3600
VAPID_REUSE = 3600
# RFC 8291: one 4096-byte record, less the header (86), the tag (16) and the padding delimiter.
MAX_PAYLOAD = 4096 - 86 - 16 - 1
# Types that a person is waiting for right now (RFC 8030 5.3 "high": incoming chat).
HIGH_URGENCY = frozenset({"message", "summary"})


def load_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The VAPID P-256 private key from PEM."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the VAPID key must be a P-256 EC key")
    return key


class WebPushProvider:
    """Sends to browser push services with VAPID."""

    platform = "webpush"

    def __init__(
        self,
        private_key_pem: str,
        subject: str,
        http: aiohttp.ClientSession,
        *,
        ttl: int = 86_400,
        timeout: float = 10.0,
    ) -> None:
        self._vapid = Vapid02(private_key=load_key(private_key_pem))
        self._subject = subject
        try:  # py_vapid refuses a `sub` that is not a mailto: or https: URI: say so at start-up
            self._vapid.sign({"aud": "https://push.example", "sub": subject})
        except VapidException as exc:
            raise ValueError(
                f"BACKCHANNEL_VAPID_SUBJECT must be a mailto: or https: URI, not {subject!r}"
            ) from exc
        self._http = http
        self._ttl = ttl
        self._timeout = timeout
        # origin -> (Authorization header, when to sign a new one)
        self._tokens: dict[str, tuple[str, float]] = {}

    def authorization(self, endpoint: str, *, now: float | None = None) -> str:
        """`vapid t=<jwt>,k=<key>` for the endpoint's origin (aud), reused for a while."""
        parts = urlsplit(endpoint)
        origin = f"{parts.scheme}://{parts.netloc}"
        now = time.time() if now is None else now
        cached = self._tokens.get(origin)
        if cached is not None and cached[1] > now:
            return cached[0]
        claims = {"aud": origin, "exp": int(now) + VAPID_LIFETIME, "sub": self._subject}
        header: str = self._vapid.sign(claims)["Authorization"]
        self._tokens[origin] = (header, now + VAPID_REUSE)
        return header

    async def send(self, device: Device, message: PushMessage) -> PushResult:
        """Encrypt the payload for the subscription and POST it to its endpoint."""
        if not device.p256dh or not device.auth:
            return PushResult(Outcome.FAILED, None, None, "subscription has no keys")
        subscription = {
            "endpoint": device.token,
            "keys": {"p256dh": device.p256dh, "auth": device.auth},
        }
        headers = {
            "Authorization": self.authorization(device.token),
            "Urgency": "high" if message.type in HIGH_URGENCY else "normal",
        }
        if message.collapse_key:
            headers["Topic"] = topic(message.collapse_key)
        data = json.dumps(message.payload(), separators=(",", ":")).encode()
        if len(data) > MAX_PAYLOAD:
            # Several records would be sent, and push services refuse them (413): say so now.
            detail = f"payload too large ({len(data)} bytes; Web Push carries {MAX_PAYLOAD})"
            return PushResult(Outcome.FAILED, None, None, detail)
        try:
            pusher = WebPusher(subscription, aiohttp_session=self._http)
            response = await pusher.send_async(
                data, headers, ttl=self._ttl, content_encoding="aes128gcm", timeout=self._timeout
            )
        except (WebPushException, ValueError) as exc:  # a malformed subscription (bad keys)
            return PushResult(Outcome.FAILED, None, None, f"invalid subscription: {exc}"[:200])
        except (aiohttp.ClientError, TimeoutError) as exc:
            return no_answer(exc)
        assert isinstance(response, aiohttp.ClientResponse)
        try:
            text = await response.text()
        except aiohttp.ClientError as exc:
            return no_answer(exc)
        finally:
            response.release()
        return answer(response.status, response.headers, text, gone=response.status in (404, 410))

    async def close(self) -> None:
        """Nothing of its own to close: it sends through the app's session."""
