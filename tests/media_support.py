"""Test media: a photo with GPS EXIF, a short MP4, uploads through the real routes, and a
local S3-compatible server (moto's server mode) for the S3 backend."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from backchannel.server.settings import Settings
from tests.support import Api, User

GPS_MARK = "GPS-SECRET-CAMERA-4242"


def photo_with_gps(size: tuple[int, int] = (640, 480)) -> bytes:
    """A JPEG whose EXIF names a camera and a GPS position."""
    image = Image.new("RGB", size)
    for x in range(0, size[0], 8):
        for y in range(0, size[1], 8):
            image.paste((x % 256, y % 256, (x * y) % 256), (x, y, x + 8, y + 8))
    exif = Image.Exif()
    exif[0x010F] = GPS_MARK  # Make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def png_bytes() -> bytes:
    """A small PNG."""
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def short_mp4(seconds: float = 2.5, padding: int = 4096) -> bytes:
    """An MP4 skeleton: `ftyp`, a `moov` whose `mvhd` says how long it is, and an `mdat`."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    mvhd = _box(
        b"mvhd", bytes(4) + struct.pack(">IIII", 0, 0, 1000, int(seconds * 1000)) + bytes(80)
    )
    return ftyp + _box(b"moov", mvhd) + _box(b"mdat", os.urandom(padding))


_SIGNED = re.compile(r"\?exp=[0-9]+&v=[^&\"]*&sig=[0-9a-f]+")


def unsigned(payload: Any) -> Any:
    """A payload with its media links' signatures and expiries taken out, for comparisons."""
    return json.loads(_SIGNED.sub("?signed", json.dumps(payload)))


async def start_upload(api: Api, user: User, content_type: str, size: int) -> tuple[int, Any]:
    """`POST /api/v1/media`."""
    return await api.call(
        "POST",
        "/api/v1/media",
        json={"content_type": content_type, "size_bytes": size, "filename": "x"},
        user=user,
    )


async def put_bytes(api: Api, ticket: dict[str, Any], data: Any) -> int:
    """PUT to the ticket's upload target (relative: Backchannel's; absolute: storage's)."""
    upload = ticket["upload"]
    url = upload["url"] if upload["url"].startswith("http") else api.base_url + upload["url"]
    async with api.session.request(
        upload["method"], url, data=data, headers=upload["headers"]
    ) as response:
        await response.read()
        return response.status


async def upload(api: Api, user: User, data: bytes, content_type: str) -> dict[str, Any]:
    """Upload and complete; returns the completion answer (expected ready)."""
    status, ticket = await start_upload(api, user, content_type, len(data))
    assert status == 201, ticket
    assert await put_bytes(api, ticket, data) in (200, 204)
    status, done = await api.call("POST", f"/api/v1/media/{ticket['media_id']}/complete", user=user)
    assert status == 200 and done["status"] == "ready", done
    return dict(done)


async def fetch(
    api: Api, url: str, user: User | None = None, byte_range: str | None = None
) -> tuple[int, bytes, Any]:
    """GET a media link (following a redirect to storage); (status, body, headers)."""
    full = url if url.startswith("http") else api.base_url + url
    headers = dict(user.auth_headers) if user else {}
    if byte_range:
        headers["Range"] = byte_range
    async with api.session.get(full, headers=headers) as response:
        return response.status, await response.read(), response.headers


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3-compatible server on a free local port, for this run."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield f"http://{host}:{port}"
    server.stop()


def s3_settings(settings: Settings, endpoint: str) -> Settings:
    """Settings on the S3 backend, with a fresh bucket at `endpoint`."""
    import boto3

    bucket = f"bc-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)
    return settings.model_copy(
        update={
            "media_store": "s3",
            "s3_bucket": bucket,
            "s3_endpoint_url": endpoint,
            "s3_region": "us-east-1",
        }
    )
