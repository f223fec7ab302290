"""Opening the configured media backend, for the server and for `backchannel media gc`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from backchannel.media.s3 import S3Store
from backchannel.media.store import LocalStore, MediaStore
from backchannel.server.settings import Settings


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[MediaStore]:
    """The local store, or an S3 client held open for the block."""
    if settings.media_store == "s3":
        assert settings.s3_bucket is not None
        s3 = S3Store(
            settings.s3_bucket,
            region=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            scratch=settings.data_dir / "tmp",
        )
        async with s3.open():
            yield s3
    else:
        yield LocalStore(settings.media_path)
