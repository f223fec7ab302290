"""Turning an uploaded file into what may be served: blocking work, run off the event loop.

Images lose their EXIF (GPS position included) and other metadata segments without being
re-encoded where the format allows (JPEG, PNG), so what a buyer downloads is the creator's
picture byte for byte minus its metadata; they also get a thumbnail, a heavily blurred preview
(the only thing a locked viewer may load) and a blurhash. MP4/QuickTime get their duration from
the `mvhd` box; when ffmpeg is installed, other video and audio get theirs from ffprobe and
video gets a poster frame (with its own blurred preview). Nothing here touches the network or
the database.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blurhash
import pillow_heif
from PIL import Image, ImageFilter, UnidentifiedImageError

from backchannel.media.sniff import HEAD_BYTES, Kind, kind_of, sniff

MAX_PIXELS = 80_000_000
THUMBNAIL_SIZE = (480, 480)
# The preview is computed from an image this small, so no detail survives to be un-blurred.
PREVIEW_SOURCE_SIZE = (16, 16)

# JPEG segments kept: APP0 (JFIF), APP2 (ICC colour profile), APP14 (Adobe colour transform)
# and everything that is not an APPn/COM segment. APP1 (EXIF, XMP), APP13 (IPTC), COM and the
# other APPn carry metadata.
_JPEG_KEPT_APP = {0xE0, 0xE2, 0xEE}
_PNG_DROPPED = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


class Rejected(Exception):
    """The file cannot be processed; the message says why."""


class WrongType(Rejected):
    """The bytes are not an allowed type, or not the declared one."""


@dataclass
class Processed:
    """What processing found and produced (files in the work folder, keyed by variant)."""

    content_type: str
    kind: Kind
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    blurhash: str | None = None
    files: dict[str, Path] = field(default_factory=dict)


def read_head(path: Path) -> bytes:
    """The first bytes of a file, enough for `sniff`."""
    with path.open("rb") as handle:
        return handle.read(HEAD_BYTES)


def check_type(path: Path, declared_type: str) -> str:
    """The file's real content type; `Rejected` unless it is allowed and what was declared."""
    actual = sniff(read_head(path))
    if actual is None:
        raise WrongType("the file is not an allowed image, video or audio format")
    if actual != declared_type.lower():
        raise WrongType(f"declared {declared_type} but the file is {actual}")
    return actual


def process(path: Path, declared_type: str, workdir: Path) -> Processed:
    """Check and process an uploaded file; the variants it produced are files in `workdir`."""
    content_type = check_type(path, declared_type)
    kind = kind_of(content_type)
    assert kind is not None
    if kind == "image":
        return _process_image(path, content_type, workdir)
    result = Processed(content_type, kind, path.stat().st_size)
    if content_type in ("video/mp4", "video/quicktime", "audio/mp4"):
        result.duration_s = mp4_duration(path)
    if result.duration_s is None:
        result.duration_s = ffprobe_duration(path)
    if kind == "video" and ffmpeg_poster(path, workdir / "frame"):
        # The poster frame stands in for the picture: its size, a small poster, a blurred
        # preview and a blurhash, exactly as for an image.
        try:
            with Image.open(workdir / "frame") as frame:
                frame.load()
                rgb = frame.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return result
        result.width, result.height = rgb.size
        result.blurhash, files = _derive(rgb, workdir, small="poster")
        result.files.update(files)
    return result


def ffprobe_duration(path: Path) -> float | None:
    """Seconds, from ffprobe when it is installed; None without it or when it cannot tell."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    command = [ffprobe, "-v", "error", "-show_entries", "format=duration"]
    command += ["-of", "default=noprint_wrappers=1:nokey=1", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        value = float(done.stdout.strip())
    except (subprocess.TimeoutExpired, OSError, ValueError):
        return None
    return round(value, 3) if value > 0 else None


def ffmpeg_poster(path: Path, target: Path) -> bool:
    """The first frame as a JPEG, when ffmpeg is installed and can decode the video."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    command = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(path), "-frames:v", "1"]
    command += ["-f", "image2", "-c:v", "mjpeg", str(target)]
    try:
        subprocess.run(command, capture_output=True, timeout=120, check=False)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return target.exists() and target.stat().st_size > 0


def _process_image(path: Path, content_type: str, workdir: Path) -> Processed:
    full = workdir / "full"
    if content_type == "image/jpeg":
        strip_jpeg(path, full)
    elif content_type == "image/png":
        strip_png(path, full)
    elif content_type == "image/gif":
        # GIF has no EXIF; it is served as uploaded.
        shutil.copyfile(path, full)
    elif content_type == "image/webp":
        _resave_webp(path, full)
    elif content_type == "image/heic":
        # Browsers other than Safari show no HEIC, so an iPhone photo is served as a JPEG;
        # re-encoding drops its metadata (GPS included) as for WebP.
        _heic_to_jpeg(path, full)
        content_type = "image/jpeg"
    else:
        raise Rejected(f"{content_type} images cannot be decoded on this server")
    try:
        with Image.open(full) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise Rejected("the image has too many pixels")
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise Rejected(f"the image cannot be decoded: {exc}") from None
    hashed, files = _derive(rgb, workdir, small="thumbnail")
    return Processed(
        content_type=content_type,
        kind="image",
        size_bytes=full.stat().st_size,
        width=width,
        height=height,
        blurhash=hashed,
        files={"full": full, **files},
    )


def _derive(rgb: Image.Image, workdir: Path, *, small: str) -> tuple[str, dict[str, Path]]:
    """A small copy (`thumbnail` or `poster`), the blurred `preview`, and the blurhash."""
    thumbnail = rgb.copy()
    thumbnail.thumbnail(THUMBNAIL_SIZE)
    thumbnail.save(workdir / small, "JPEG", quality=80)
    tiny = rgb.copy()
    tiny.thumbnail(PREVIEW_SOURCE_SIZE)
    radius = max(thumbnail.size) / 20
    preview = tiny.resize(thumbnail.size, Image.Resampling.BILINEAR).filter(
        ImageFilter.GaussianBlur(radius)
    )
    preview.save(workdir / "preview", "JPEG", quality=60)
    pixels: Any = [[tiny.getpixel((x, y)) for x in range(tiny.width)] for y in range(tiny.height)]
    return blurhash.encode(pixels, 4, 3), {small: workdir / small, "preview": workdir / "preview"}


def strip_jpeg(source: Path, target: Path) -> None:
    """Copy a JPEG without its metadata segments; the image data is copied untouched."""
    with source.open("rb") as src, target.open("wb") as out:
        if src.read(2) != b"\xff\xd8":
            raise Rejected("not a JPEG")
        out.write(b"\xff\xd8")
        while True:
            marker = src.read(2)
            if len(marker) < 2 or marker[0] != 0xFF:
                raise Rejected("corrupt JPEG: bad segment marker")
            code = marker[1]
            if code in (0xDA, 0xD9):
                # Start of scan (or end of image): the rest is image data, copied as it is.
                out.write(marker)
                shutil.copyfileobj(src, out, 1 << 20)
                return
            if 0xD0 <= code <= 0xD7 or code in (0x01, 0xFF):
                out.write(marker)
                continue
            raw_length = src.read(2)
            if len(raw_length) < 2:
                raise Rejected("corrupt JPEG: truncated segment")
            length = int.from_bytes(raw_length, "big")
            payload = src.read(length - 2)
            if len(payload) != length - 2:
                raise Rejected("corrupt JPEG: truncated segment")
            is_metadata = code == 0xFE or (0xE0 <= code <= 0xEF and code not in _JPEG_KEPT_APP)
            if not is_metadata:
                out.write(marker + raw_length + payload)


def strip_png(source: Path, target: Path) -> None:
    """Copy a PNG without its EXIF, text and time chunks."""
    with source.open("rb") as src, target.open("wb") as out:
        signature = src.read(8)
        if signature != b"\x89PNG\r\n\x1a\n":
            raise Rejected("not a PNG")
        out.write(signature)
        while True:
            header = src.read(8)
            if not header:
                return
            if len(header) < 8:
                raise Rejected("corrupt PNG: truncated chunk")
            length, chunk_type = struct.unpack(">I4s", header)
            keep = chunk_type not in _PNG_DROPPED
            if keep:
                out.write(header)
            remaining = length + 4  # data and CRC
            while remaining:
                block = src.read(min(remaining, 1 << 20))
                if not block:
                    raise Rejected("corrupt PNG: truncated chunk")
                if keep:
                    out.write(block)
                remaining -= len(block)
            if chunk_type == b"IEND":
                return


def _resave_webp(source: Path, target: Path) -> None:
    """WebP metadata lives in RIFF chunks flagged in a header; re-encoding drops it all."""
    try:
        with Image.open(source) as image:
            if image.width * image.height > MAX_PIXELS:
                raise Rejected("the image has too many pixels")
            animated = bool(getattr(image, "is_animated", False))
            image.save(target, "WEBP", quality=90, save_all=animated, exif=b"", xmp=b"")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise Rejected(f"the image cannot be decoded: {exc}") from None


def _heic_to_jpeg(source: Path, target: Path) -> None:
    """Decode HEIC/HEIF (libheif, through pillow-heif) and save the pixels alone as a JPEG."""
    try:
        heif = pillow_heif.open_heif(source, convert_hdr_to_8bit=True)
        width, height = heif.size
        if width * height > MAX_PIXELS:
            raise Rejected("the image has too many pixels")
        heif.to_pillow().convert("RGB").save(target, "JPEG", quality=90)
    except (OSError, SyntaxError, ValueError, RuntimeError) as exc:
        raise Rejected(f"the image cannot be decoded: {exc}") from None


def mp4_duration(path: Path) -> float | None:
    """Seconds, from the `mvhd` box of an MP4/QuickTime file; None when it has none."""
    with path.open("rb") as handle:
        total = os.fstat(handle.fileno()).st_size
        found = _find_box(handle, 0, total, b"moov")
        if found is None:
            return None
        moov_start, moov_end = found
        mvhd = _find_box(handle, moov_start, moov_end, b"mvhd")
        if mvhd is None:
            return None
        handle.seek(mvhd[0])
        version = handle.read(4)[:1]
        if version == b"\x01":
            handle.read(16)
            raw = handle.read(12)
            if len(raw) < 12:
                return None
            timescale, duration = struct.unpack(">IQ", raw)
        else:
            handle.read(8)
            raw = handle.read(8)
            if len(raw) < 8:
                return None
            timescale, duration = struct.unpack(">II", raw)
    return round(duration / timescale, 3) if timescale else None


def _find_box(handle: Any, start: int, end: int, wanted: bytes) -> tuple[int, int] | None:
    """The (payload start, end) of the first `wanted` box between `start` and `end`."""
    offset = start
    while offset + 8 <= end:
        handle.seek(offset)
        size, box_type = struct.unpack(">I4s", handle.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", handle.read(8))[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header:
            return None
        if box_type == wanted:
            return offset + header, min(offset + size, end)
        offset += size
    return None
