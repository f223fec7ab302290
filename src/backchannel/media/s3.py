"""The S3 backend: any S3-compatible service (AWS, R2, MinIO, Backblaze) through aiobotocore.

Clients upload with a presigned PUT and download through short-lived presigned GETs that
Backchannel hands out only after checking its own per-viewer link. Credentials come from the
usual AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, profiles, instance roles).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from backchannel.media.store import CHUNK_BYTES


class S3Store:
    """Objects in one bucket; `open()` must be entered before use."""

    name = "s3"

    def __init__(
        self, bucket: str, *, region: str | None, endpoint_url: str | None, scratch: Path
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url
        self.scratch = scratch
        self._client: Any = None

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[S3Store]:
        """Hold one client (and its connection pool) for the server's lifetime."""
        session = get_session()
        config = AioConfig(signature_version="s3v4", s3={"addressing_style": "path"})
        async with session.create_client(
            "s3", region_name=self.region, endpoint_url=self.endpoint_url, config=config
        ) as client:
            self._client = client
            self.scratch.mkdir(parents=True, exist_ok=True)
            try:
                yield self
            finally:
                self._client = None

    @property
    def client(self) -> Any:
        """The open client."""
        if self._client is None:
            raise RuntimeError("S3 store not open")
        return self._client

    async def presigned_put(self, key: str, content_type: str, ttl_seconds: int) -> str | None:
        """A presigned PUT of exactly this content type."""
        url: str = await self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=ttl_seconds,
        )
        return url

    async def presigned_get(self, key: str, content_type: str, ttl_seconds: int) -> str | None:
        """A presigned GET answered with this content type and `Cache-Control: private`."""
        url: str = await self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": content_type,
                "ResponseCacheControl": f"private, max-age={ttl_seconds}",
            },
            ExpiresIn=ttl_seconds,
        )
        return url

    def local_path(self, key: str) -> Path | None:
        """Objects are not local files."""
        return None

    @contextlib.asynccontextmanager
    async def local_copy(self, key: str) -> AsyncIterator[Path | None]:
        """Download the object to a scratch file, chunk by chunk; removed afterwards."""
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                yield None
                return
            raise
        fd, name = tempfile.mkstemp(dir=self.scratch)
        try:
            with os.fdopen(fd, "wb") as handle:
                async with response["Body"] as body:
                    while chunk := await body.read(CHUNK_BYTES):
                        handle.write(chunk)
            yield Path(name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Upload a local file."""
        with path.open("rb") as handle:
            await self.client.put_object(
                Bucket=self.bucket, Key=key, Body=handle, ContentType=content_type
            )

    async def size(self, key: str) -> int | None:
        """HEAD the object."""
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    async def delete(self, keys: list[str]) -> None:
        """Delete objects, a thousand per request."""
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            if batch:
                await self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )

    async def objects(self) -> AsyncIterator[tuple[str, datetime]]:
        """Every object in the bucket."""
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                yield str(item["Key"]), item["LastModified"]


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}
