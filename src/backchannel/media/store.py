"""Where media bytes live: one small interface, a local backend and (in `s3.py`) an S3 one.

Keys are `<media id>/<variant>`; every object belongs to a `media` row of that id, which is
what `backchannel media gc` checks. Backends never hold a whole object in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[0-9]{1,18}/(full|thumbnail|preview|poster)$")
CHUNK_BYTES = 256 * 1024


class TooBig(Exception):
    """More bytes arrived than were allowed; nothing was kept."""


def media_key(media_id: int | str, variant: str) -> str:
    """The storage key of one variant of one media item."""
    key = f"{media_id}/{variant}"
    if not _KEY.match(key):
        raise ValueError(f"not a media key: {key!r}")
    return key


def media_id_of(key: str) -> int | None:
    """The media id a storage key belongs to, or None if it is no media key at all."""
    return int(key.split("/", 1)[0]) if _KEY.match(key) else None


class MediaStore(Protocol):
    """What the media operations need from a storage backend."""

    name: str

    async def presigned_put(self, key: str, content_type: str, ttl_seconds: int) -> str | None:
        """A URL the client PUTs the bytes to directly; None when Backchannel receives them."""

    async def presigned_get(self, key: str, content_type: str, ttl_seconds: int) -> str | None:
        """A short-lived URL to the bytes; None when Backchannel serves them itself."""

    def local_path(self, key: str) -> Path | None:
        """The file holding `key`, for backends that have one."""

    def local_copy(self, key: str) -> contextlib.AbstractAsyncContextManager[Path | None]:
        """A local file with the object's bytes for as long as the block runs (None: absent)."""

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store a local file's bytes under `key`."""

    async def size(self, key: str) -> int | None:
        """The object's size in bytes; None when it does not exist."""

    async def delete(self, keys: list[str]) -> None:
        """Remove objects; absent ones are fine."""

    def objects(self) -> AsyncIterator[tuple[str, datetime]]:
        """Every stored key with its last modification time."""


class LocalStore:
    """Files under `<data folder>/media`, served by Backchannel's own signed routes."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.incoming = root / ".incoming"
        self.incoming.mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        media_key(*key.split("/", 1))  # validates: no path can escape the root
        return self.root / key

    async def presigned_put(self, key: str, content_type: str, ttl_seconds: int) -> str | None:
        """Uploads come to Backchannel's signed `PUT /media/{id}/upload`."""
        return None

    async def presigned_get(self, key: str, content_type: str, ttl_seconds: int) -> str | None:
        """Backchannel serves local files itself."""
        return None

    def local_path(self, key: str) -> Path | None:
        """The file for `key`."""
        return self._path(key)

    @contextlib.asynccontextmanager
    async def local_copy(self, key: str) -> AsyncIterator[Path | None]:
        """The stored file itself: no copy is needed."""
        path = self._path(key)
        yield path if path.exists() else None

    async def receive(self, key: str, chunks: AsyncIterator[bytes], limit: int) -> int:
        """Write a stream to `key` chunk by chunk; `TooBig` (and nothing kept) past `limit`."""
        target = self._path(key)
        fd, temp_name = tempfile.mkstemp(dir=self.incoming)
        written = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                async for chunk in chunks:
                    written += len(chunk)
                    if written > limit:
                        raise TooBig(f"more than {limit} bytes")
                    # Disk writes of a chunk are short; a thread per chunk would cost more.
                    handle.write(chunk)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        return written

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Copy a file into the store (atomically replacing what was there)."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = self.incoming / f"{key.replace('/', '-')}.{os.getpid()}"
        await asyncio.to_thread(shutil.copyfile, path, temp)
        os.replace(temp, target)

    async def size(self, key: str) -> int | None:
        """The file's size."""
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    async def delete(self, keys: list[str]) -> None:
        """Unlink the files (and a media folder left empty); stray files `objects` listed
        may be named by keys that are no media keys."""
        for key in keys:
            path = (self.root / key).resolve()
            if self.root.resolve() not in path.parents or path.parent == self.incoming.resolve():
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()

    async def objects(self) -> AsyncIterator[tuple[str, datetime]]:
        """Every file under the root (the incoming folder aside)."""
        for folder in sorted(self.root.iterdir()):
            if folder == self.incoming:
                continue
            if not folder.is_dir():
                modified = datetime.fromtimestamp(folder.stat().st_mtime, UTC)
                yield folder.name, modified
                continue
            for path in sorted(folder.iterdir()):
                modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                yield f"{folder.name}/{path.name}", modified
