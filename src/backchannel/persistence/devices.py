"""Devices that receive pushes: one row per provider address, owned by its newest user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backchannel.persistence.database import Connection


@dataclass(frozen=True)
class Device:
    """A registered device (a Web Push subscription or an FCM/APNs token)."""

    id: int
    user_id: str
    platform: str
    token: str
    p256dh: str | None
    auth: str | None
    app_id: str | None
    locale: str | None
    time_zone: str | None
    created_at: datetime


_COLUMNS = "id, user_id, platform, token, p256dh, auth, app_id, locale, time_zone, created_at"

# Registering a known token again updates it and moves it to the caller (the newest user).
UPSERT_DEVICE = f"""
insert into devices (user_id, platform, token, p256dh, auth, app_id, locale, time_zone)
values ($1, $2, $3, $4, $5, $6, $7, $8)
on conflict (platform, token) do update set
    user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth,
    app_id = excluded.app_id, locale = excluded.locale, time_zone = excluded.time_zone,
    updated_at = now()
returning {_COLUMNS}
"""


async def upsert_device(
    conn: Connection,
    user_id: str,
    platform: str,
    token: str,
    *,
    p256dh: str | None = None,
    auth: str | None = None,
    app_id: str | None = None,
    locale: str | None = None,
    time_zone: str | None = None,
) -> Device:
    """Store or refresh the device at `(platform, token)` for `user_id`."""
    row = await conn.fetchrow(
        UPSERT_DEVICE, user_id, platform, token, p256dh, auth, app_id, locale, time_zone
    )
    assert row is not None
    return Device(**dict(row))


# Keep the newest `$2` devices of the user (by last registration).
TRIM_DEVICES = """
delete from devices where id in (
    select id from devices where user_id = $1 order by updated_at desc, id desc offset $2
)
"""


async def trim_devices(conn: Connection, user_id: str, keep: int) -> None:
    """Remove the user's oldest devices beyond `keep`."""
    await conn.execute(TRIM_DEVICES, user_id, keep)


SELECT_DEVICES = f"select {_COLUMNS} from devices where user_id = $1 order by id"


async def list_devices(conn: Connection, user_id: str) -> list[Device]:
    """The user's devices, oldest first."""
    return [Device(**dict(row)) for row in await conn.fetch(SELECT_DEVICES, user_id)]


SELECT_DEVICE = f"select {_COLUMNS} from devices where id = $1"


async def get_device(conn: Connection, device_id: int) -> Device | None:
    """One device by id."""
    row = await conn.fetchrow(SELECT_DEVICE, device_id)
    return Device(**dict(row)) if row is not None else None


DELETE_DEVICE = "delete from devices where id = $1 and user_id = $2"


async def delete_device(conn: Connection, user_id: str, device_id: int) -> bool:
    """Remove the user's device; False when it is not theirs (or not there)."""
    status: str = await conn.execute(DELETE_DEVICE, device_id, user_id)
    return status == "DELETE 1"


DELETE_GONE = "delete from devices where id = $1"


async def delete_gone(conn: Connection, device_id: int) -> None:
    """The provider says the device is gone: forget it."""
    await conn.execute(DELETE_GONE, device_id)
