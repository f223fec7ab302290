"""The S3 backend's own edges: sizes checked at completion, mismatches deleted, gc."""

from __future__ import annotations

import boto3
import pytest

from backchannel.domain.media_cleanup import collect_garbage
from backchannel.media.backends import open_store
from backchannel.persistence.database import open_database
from backchannel.server.settings import Settings
from tests.media_support import (
    moto_endpoint,
    photo_with_gps,
    png_bytes,
    put_bytes,
    s3_settings,
    start_upload,
    upload,
)
from tests.services import RunServices
from tests.support import Api

__all__ = ["moto_endpoint"]


@pytest.fixture(name="settings")
def on_s3(settings: Settings, moto_endpoint: str) -> Settings:
    """Media on the local S3-compatible server."""
    return s3_settings(settings, moto_endpoint)


def _keys(settings: Settings) -> list[str]:
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")
    listed = client.list_objects_v2(Bucket=settings.s3_bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def test_uploads_go_straight_to_the_bucket_and_bad_ones_are_deleted_there(
    api: Api, settings: Settings
) -> None:
    creator = await api.register(role="creator")
    data = photo_with_gps()
    status, ticket = await start_upload(api, creator, "image/jpeg", len(data) - 1)
    assert ticket["upload"]["url"].startswith(settings.s3_endpoint_url or "")
    assert await put_bytes(api, ticket, data) == 200
    status, refused = await api.call(
        "POST", f"/api/v1/media/{ticket['media_id']}/complete", user=creator
    )
    assert status == 413 and refused["error"]["code"] == "too_large"
    status, ticket = await start_upload(api, creator, "video/mp4", len(png_bytes()))
    assert await put_bytes(api, ticket, png_bytes()) == 200
    status, refused = await api.call(
        "POST", f"/api/v1/media/{ticket['media_id']}/complete", user=creator
    )
    assert status == 400 and refused["error"]["code"] == "invalid"
    assert _keys(settings) == []
    done = await upload(api, creator, data, "image/jpeg")
    media_id = done["media_id"]
    assert _keys(settings) == [f"{media_id}/full", f"{media_id}/preview", f"{media_id}/thumbnail"]


async def test_gc_removes_objects_in_the_bucket_that_no_row_owns(
    api: Api, settings: Settings, services: RunServices
) -> None:
    creator = await api.register(role="creator")
    kept = await upload(api, creator, png_bytes(), "image/png")
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")
    client.put_object(Bucket=settings.s3_bucket, Key="424242/full", Body=b"orphan")
    client.put_object(Bucket=settings.s3_bucket, Key="stray.bin", Body=b"stray")
    db = await open_database(
        services.database_url, min_size=0, max_size=1, statement_timeout_ms=5000
    )
    try:
        async with open_store(settings) as store:
            report = await collect_garbage(db, store, 86400, grace_seconds=0)
    finally:
        await db.close()
    assert sorted(report.removed) == ["424242/full", "stray.bin"]
    assert all(key.startswith(f"{kept['media_id']}/") for key in _keys(settings))
