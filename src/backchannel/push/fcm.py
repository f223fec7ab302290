"""FCM HTTP v1: an OAuth2 access token minted from a service account, then `messages:send`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from backchannel.persistence.devices import Device
from backchannel.push.answers import answer, no_answer
from backchannel.push.apns import collapse_id
from backchannel.push.messages import Outcome, PushMessage, PushResult

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600
# A cached access token is replaced this long before Google says it expires.
TOKEN_MARGIN = 300.0


@dataclass(frozen=True)
class ServiceAccount:
    """The fields of a Google service-account JSON that FCM needs."""

    project_id: str
    client_email: str
    private_key: str  # PEM (RSA)
    token_uri: str

    @classmethod
    def load(cls, source: str) -> ServiceAccount:
        """From the JSON itself or a path to it."""
        text = source if source.lstrip().startswith("{") else Path(source).read_text()
        try:
            raw = json.loads(text)
            return cls(
                project_id=str(raw["project_id"]),
                client_email=str(raw["client_email"]),
                private_key=str(raw["private_key"]),
                token_uri=str(raw.get("token_uri") or "https://oauth2.googleapis.com/token"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"BACKCHANNEL_FCM_CREDENTIALS is not a service-account JSON: {exc}"
            ) from exc


class TokenError(Exception):
    """The token endpoint refused or did not answer; carries the send's result."""

    def __init__(self, result: PushResult) -> None:
        super().__init__(result.detail)
        self.result = result


class FcmProvider:
    """Sends to Android (and iOS through Firebase) with FCM HTTP v1."""

    platform = "fcm"

    def __init__(
        self,
        account: ServiceAccount,
        http: aiohttp.ClientSession,
        *,
        base_url: str = "https://fcm.googleapis.com",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._account = account
        self._clock = clock  # when the cached access token is replaced
        self._http = http
        self._url = f"{base_url.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: tuple[str, float] | None = None  # (access token, replace after)
        self._lock = asyncio.Lock()
        self.tokens_minted = 0

    def assertion(self, now: float) -> str:
        """The RS256 JWT-bearer assertion (RFC 7523) signed with the account's key."""
        claims = {
            "iss": self._account.client_email,
            "scope": SCOPE,
            "aud": self._account.token_uri,
            "iat": int(now),
            "exp": int(now) + ASSERTION_LIFETIME,
        }
        return jwt.encode(claims, self._account.private_key, algorithm="RS256")

    async def access_token(self) -> str:
        """A cached access token, minted again shortly before it expires."""
        async with self._lock:
            now = self._clock()
            if self._token is not None and self._token[1] > now:
                return self._token[0]
            # The assertion is judged by the token endpoint's clock: sign it at the real time.
            form = {"grant_type": JWT_BEARER, "assertion": self.assertion(time.time())}
            try:
                async with self._http.post(
                    self._account.token_uri, data=form, timeout=self._timeout
                ) as response:
                    text = await response.text()
                    if response.status != 200:
                        result = answer(response.status, response.headers, f"oauth: {text}")
                        if result.outcome is not Outcome.RETRY:
                            result = PushResult(Outcome.FAILED, result.status, None, result.detail)
                        raise TokenError(result)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TokenError(no_answer(exc)) from exc
            try:
                body = json.loads(text)
                token = str(body["access_token"])
                lifetime = float(body.get("expires_in", 3600))
            except (ValueError, KeyError, TypeError) as exc:
                raise TokenError(
                    PushResult(Outcome.FAILED, 200, None, f"oauth: bad answer {text[:100]}")
                ) from exc
            self._token = (token, now + max(lifetime - TOKEN_MARGIN, lifetime / 2))
            self.tokens_minted += 1
            return token

    def body(self, device: Device, message: PushMessage) -> dict[str, Any]:
        """The `messages:send` request body."""
        notification = {"title": message.title}
        if message.body is not None:
            notification["body"] = message.body
        data = {"type": message.type, "badge": str(message.badge), "data": json.dumps(message.data)}
        if message.notification_id is not None:
            data["notification_id"] = str(message.notification_id)
        if message.collapse_key is not None:
            data["collapse_key"] = message.collapse_key
        aps: dict[str, Any] = {"badge": message.badge}
        out: dict[str, Any] = {
            "token": device.token,
            "notification": notification,
            "data": data,
            "android": {"priority": "high"},
            "apns": {"payload": {"aps": aps}},
        }
        if message.collapse_key is not None:
            out["android"]["collapse_key"] = message.collapse_key
            out["apns"]["headers"] = {"apns-collapse-id": collapse_id(message.collapse_key)}
        return {"message": out}

    async def send(self, device: Device, message: PushMessage) -> PushResult:
        """POST the message; a refused token (401) is minted again once."""
        payload = self.body(device, message)
        for attempt in (1, 2):
            try:
                token = await self.access_token()
            except TokenError as exc:
                return exc.result
            try:
                async with self._http.post(
                    self._url,
                    json=payload,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self._timeout,
                ) as response:
                    text = await response.text()
                    status, headers = response.status, response.headers
            except (aiohttp.ClientError, TimeoutError) as exc:
                return no_answer(exc)
            if status == 401 and attempt == 1:
                self._token = None
                continue
            break
        return answer(status, headers, _detail(status, text), gone=_gone(status, text))

    async def close(self) -> None:
        """Nothing of its own to close: it sends through the app's session."""


def _error(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _gone(status: int, text: str) -> bool:
    """404, `UNREGISTERED`, or INVALID_ARGUMENT naming the token: the token is dead."""
    if status == 404:
        return True
    error = _error(text)
    details = [d for d in error.get("details", []) if isinstance(d, dict)]
    if any(d.get("errorCode") == "UNREGISTERED" for d in details):
        return True
    if status == 400 and error.get("status") == "INVALID_ARGUMENT":
        for detail in details:
            for violation in detail.get("fieldViolations", []) or []:
                if isinstance(violation, dict) and violation.get("field") == "message.token":
                    return True
    return False


def _detail(status: int, text: str) -> str:
    error = _error(text)
    if not error:
        return text
    codes = [
        str(d["errorCode"])
        for d in error.get("details", [])
        if isinstance(d, dict) and "errorCode" in d
    ]
    return " ".join([str(error.get("status", status)), *codes, str(error.get("message", ""))])
