"""Type sniffing and processing, alone: the bytes decide, metadata goes, pixels stay."""

from __future__ import annotations

import io
import itertools
import struct
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, PngImagePlugin

from backchannel.media.processing import (
    Rejected,
    WrongType,
    check_type,
    mp4_duration,
    process,
    strip_jpeg,
    strip_png,
)
from backchannel.media.sniff import sniff
from tests.media_support import GPS_MARK, photo_with_gps, png_bytes, short_mp4


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0" + bytes(60), "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n" + bytes(56), "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(48), "image/webp"),
        (b"GIF89a" + bytes(58), "image/gif"),
        (b"\x00\x00\x00\x18ftypheic" + bytes(52), "image/heic"),
        (b"\x00\x00\x00\x18ftypisom" + bytes(52), "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  " + bytes(52), "video/quicktime"),
        (b"\x00\x00\x00\x18ftypM4A " + bytes(52), "audio/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + bytes(48), "video/webm"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska" + bytes(44), None),
        (b"OggS\x00\x02" + bytes(58), "audio/ogg"),
        (b"ID3\x04\x00" + bytes(59), "audio/mpeg"),
        (b"\xff\xfb\x90\x64" + bytes(60), "audio/mpeg"),
        (b"MZ\x90\x00" + bytes(60), None),
        (b"\x7fELF\x02\x01\x01" + bytes(57), None),
        (b"%PDF-1.7" + bytes(56), None),
        (b"", None),
    ],
)
def test_the_first_bytes_name_the_type(head: bytes, expected: str | None) -> None:
    assert sniff(head) == expected


def test_a_declared_type_that_is_not_the_real_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(png_bytes())
    with pytest.raises(WrongType, match="declared video/mp4 but the file is image/png"):
        check_type(path, "video/mp4")
    assert check_type(path, "IMAGE/PNG") == "image/png"


def test_a_jpeg_loses_its_exif_and_keeps_its_pixels(tmp_path: Path) -> None:
    original = photo_with_gps()
    (tmp_path / "in").write_bytes(original)
    strip_jpeg(tmp_path / "in", tmp_path / "out")
    stripped = (tmp_path / "out").read_bytes()
    assert GPS_MARK.encode() in original and GPS_MARK.encode() not in stripped
    assert not Image.open(io.BytesIO(stripped)).getexif()
    assert Image.open(io.BytesIO(stripped)).tobytes() == Image.open(io.BytesIO(original)).tobytes()


def test_a_png_loses_its_text_and_exif_chunks(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", GPS_MARK)
    exif = Image.Exif()
    exif[0x010F] = GPS_MARK
    out = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(out, "PNG", pnginfo=info, exif=exif)
    (tmp_path / "in").write_bytes(out.getvalue())
    strip_png(tmp_path / "in", tmp_path / "out")
    stripped = (tmp_path / "out").read_bytes()
    assert GPS_MARK.encode() in out.getvalue() and GPS_MARK.encode() not in stripped
    assert Image.open(io.BytesIO(stripped)).size == (20, 10)


def test_webp_is_re_encoded_without_its_exif(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = GPS_MARK
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (9, 9, 9)).save(out, "WEBP", exif=exif)
    (tmp_path / "in").write_bytes(out.getvalue())
    work = tmp_path / "work"
    work.mkdir()
    result = process(tmp_path / "in", "image/webp", work)
    assert GPS_MARK.encode() not in result.files["full"].read_bytes()
    assert (result.width, result.height) == (40, 30) and result.blurhash


def test_an_image_gets_a_thumbnail_a_blurred_preview_and_a_blurhash(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(photo_with_gps((1200, 900)))
    work = tmp_path / "work"
    work.mkdir()
    result = process(tmp_path / "in", "image/jpeg", work)
    assert (result.kind, result.width, result.height) == ("image", 1200, 900)
    assert sorted(result.files) == ["full", "preview", "thumbnail"]
    with Image.open(result.files["thumbnail"]) as thumbnail:
        assert thumbnail.size == (480, 360)
    with Image.open(result.files["preview"]) as blurred:
        preview = blurred.convert("L")
    # Blurred: neighbouring pixels barely differ (the source has sharp 8 px blocks).
    row = [preview.getpixel((x, 180)) for x in range(0, 480)]
    assert max(abs(int(a) - int(b)) for a, b in itertools.pairwise(row)) <= 6
    assert result.blurhash is not None and len(result.blurhash) >= 6


def test_a_heic_that_cannot_be_decoded_is_rejected_not_served(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    with pytest.raises(Rejected):
        process(tmp_path / "in", "image/heic", tmp_path)


def test_an_iphone_heic_photo_becomes_a_jpeg_without_its_metadata(tmp_path: Path) -> None:
    pillow_heif.register_heif_opener()  # to make a HEIC sample, as a phone would
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x8825] = {2: (52.0, 31.0, 12.0)}  # GPSInfo: a latitude
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(buffer, format="HEIF", exif=exif.tobytes())
    (tmp_path / "in").write_bytes(buffer.getvalue())
    assert sniff(buffer.getvalue()[:64]) == "image/heic"
    work = tmp_path / "work"
    work.mkdir()

    result = process(tmp_path / "in", "image/heic", work)

    assert (result.content_type, result.width, result.height) == ("image/jpeg", 640, 480)
    with Image.open(result.files["full"]) as served:
        assert served.format == "JPEG"
        assert "exif" not in served.info and not served.getexif()
    assert sorted(result.files) == ["full", "preview", "thumbnail"]


def test_mp4_duration_comes_from_the_mvhd_box(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(short_mp4(3.25))
    assert mp4_duration(tmp_path / "a.mp4") == 3.25
    # Version 1 (64-bit) mvhd.
    mvhd = bytes([1, 0, 0, 0]) + bytes(16) + struct.pack(">IQ", 600, 600 * 90) + bytes(80)
    moov = struct.pack(">I4s", 8 + 8 + len(mvhd), b"moov")
    moov += struct.pack(">I4s", 8 + len(mvhd), b"mvhd") + mvhd
    ftyp = struct.pack(">I4s", 16, b"ftyp") + b"isom" + bytes(4)
    (tmp_path / "b.mp4").write_bytes(ftyp + moov)
    assert mp4_duration(tmp_path / "b.mp4") == 90.0
    (tmp_path / "c.mp4").write_bytes(ftyp)
    assert mp4_duration(tmp_path / "c.mp4") is None
