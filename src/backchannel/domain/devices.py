"""Registering the devices a user's pushes go to, and the Web Push application server key."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backchannel.domain.webpush import application_server_key, load_vapid_key
from backchannel.errors import Invalid, NotFound, Unavailable
from backchannel.inputs import IanaTimeZone
from backchannel.persistence import devices as store
from backchannel.persistence.devices import Device

if TYPE_CHECKING:
    from backchannel.server.runtime import Runtime

_Short = Annotated[str, Field(min_length=1, max_length=200)]


class SubscriptionKeys(BaseModel):
    """A browser's `PushSubscription.toJSON().keys`."""

    model_config = ConfigDict(extra="forbid")
    p256dh: Annotated[str, Field(min_length=80, max_length=100, pattern=r"^[A-Za-z0-9_-]+=*$")]
    auth: Annotated[str, Field(min_length=16, max_length=32, pattern=r"^[A-Za-z0-9_-]+=*$")]


class WebPushSubscription(BaseModel):
    """A browser's push subscription (`PushSubscription.toJSON()`)."""

    model_config = ConfigDict(extra="ignore")
    endpoint: Annotated[str, Field(min_length=10, max_length=1000)]
    keys: SubscriptionKeys

    @field_validator("endpoint")
    @classmethod
    def _https(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in {"https", "http"} or not parsed.hostname:
            raise ValueError("must be an http(s) URL")
        return value


class DeviceRequest(BaseModel):
    """`POST /devices`: a Web Push subscription, or an FCM/APNs token."""

    model_config = ConfigDict(extra="forbid")
    platform: Literal["webpush", "fcm", "apns"]
    token: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    subscription: WebPushSubscription | None = None
    app_id: _Short | None = None
    locale: Annotated[str, Field(min_length=2, max_length=35)] | None = None
    time_zone: IanaTimeZone | None = None

    @model_validator(mode="after")
    def _address(self) -> DeviceRequest:
        if self.platform == "webpush":
            if self.subscription is None or self.token is not None:
                raise ValueError("webpush devices send `subscription`, not `token`")
        elif self.token is None or self.subscription is not None:
            raise ValueError(f"{self.platform} devices send `token`, not `subscription`")
        return self


class DeviceView(BaseModel):
    """A registered device as its owner sees it."""

    id: int
    platform: str
    app_id: str | None = None
    locale: str | None = None
    time_zone: str | None = None
    created_at: datetime

    @classmethod
    def of(cls, device: Device) -> DeviceView:
        """The view of a stored device (its address is not echoed)."""
        return cls(
            id=device.id,
            platform=device.platform,
            app_id=device.app_id,
            locale=device.locale,
            time_zone=device.time_zone,
            created_at=device.created_at,
        )


class DeviceList(BaseModel):
    """`GET /devices`."""

    items: list[DeviceView]


class WebPushKey(BaseModel):
    """`GET /push/webpush-key`: the VAPID key for `pushManager.subscribe`."""

    public_key: str


def endpoint_allowed(endpoint: str, hosts: tuple[str, ...] | None) -> bool:
    """Whether a Web Push endpoint names an allowed push service (https only when restricted).

    A subscription is a URL this server will POST to: left open, any user could point it at
    an internal address.
    """
    if hosts is None:
        return True
    parsed = urlparse(endpoint)
    host = (parsed.hostname or "").lower()
    if parsed.scheme != "https":
        return False
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in hosts)


async def register(rt: Runtime, user_id: str, request: DeviceRequest) -> DeviceView:
    """Store the device for the user (the same address again updates it and moves it here)."""
    if request.subscription and not endpoint_allowed(
        request.subscription.endpoint, rt.settings.webpush_hosts
    ):
        raise Invalid(
            "this push service is not allowed",
            [{"field": "subscription.endpoint", "message": "not an allowed push service"}],
        )
    keys = request.subscription.keys if request.subscription else None
    token = request.subscription.endpoint if request.subscription else request.token
    assert token is not None
    async with rt.db.transaction() as conn:
        device = await store.upsert_device(
            conn,
            user_id,
            request.platform,
            token,
            p256dh=keys.p256dh if keys else None,
            auth=keys.auth if keys else None,
            app_id=request.app_id,
            locale=request.locale,
            time_zone=request.time_zone,
        )
        await store.trim_devices(conn, user_id, rt.settings.push_max_devices)
    return DeviceView.of(device)


async def list_devices(rt: Runtime, user_id: str) -> DeviceList:
    """The user's devices."""
    async with rt.db.connection() as conn:
        found = await store.list_devices(conn, user_id)
    return DeviceList(items=[DeviceView.of(d) for d in found])


def parse_device_id(raw: str) -> int:
    """A device id from a path: a positive integer in Postgres' bigint range."""
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise Invalid("invalid device id", [{"field": "id", "message": "not a device id"}])
    return int(raw)


async def remove(rt: Runtime, user_id: str, device_id: int) -> None:
    """Forget one of the user's devices."""
    async with rt.db.transaction() as conn:
        if not await store.delete_device(conn, user_id, device_id):
            raise NotFound("no such device")


def webpush_key(rt: Runtime) -> WebPushKey:
    """The VAPID application server key, base64url of the uncompressed P-256 point."""
    pem = rt.settings.vapid_private_key
    if pem is None:  # production without BACKCHANNEL_VAPID_PRIVATE_KEY (dev generates one)
        raise Unavailable("Web Push is not configured")
    return WebPushKey(public_key=application_server_key(load_vapid_key(pem.get_secret_value())))
