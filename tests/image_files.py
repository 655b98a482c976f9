"""Image files as their headers are laid out, for the tests of image tokens (each was checked
against ``file(1)`` when written: sizes, and width before height)."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def gif(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00;"


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg(w: int, h: int, frame: int = 0xC0, app1: bytes = b"") -> bytes:
    """JFIF, an optional APP1 (EXIF) segment, a quantization table, a fill byte, then the frame
    header (baseline 0xC0, progressive 0xC2...), a scan and the end."""
    out = b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if app1:
        out += segment(0xE1, app1)
    out += segment(0xDB, b"\x00" + bytes(64))
    components = b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    out += b"\xff" + segment(frame, struct.pack(">BHHB", 8, h, w, 3) + components)
    return out + segment(0xDA, b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00") + bytes(8) + b"\xff\xd9"


def _riff(fourcc: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + fourcc + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_lossy(w: int, h: int) -> bytes:
    return _riff(b"VP8 ", b"\x50\x02\x00\x9d\x01\x2a" + struct.pack("<HH", w, h) + bytes(20))


def webp_lossless(w: int, h: int) -> bytes:
    return _riff(b"VP8L", b"\x2f" + struct.pack("<I", (w - 1) | (h - 1) << 14) + bytes(10))


def webp_extended(w: int, h: int) -> bytes:
    size = (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return _riff(b"VP8X", b"\x10\x00\x00\x00" + size)


FORMATS: dict[str, Callable[[int, int], bytes]] = {
    "png": png,
    "gif": gif,
    "jpeg": jpeg,
    "jpeg-progressive": lambda w, h: jpeg(w, h, 0xC2),
    "jpeg-exif": lambda w, h: jpeg(w, h, app1=b"Exif\x00\x00" + bytes(3000)),
    "webp-lossy": webp_lossy,
    "webp-lossless": webp_lossless,
    "webp-extended": webp_extended,
}


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def large_data_url(w: int, h: int, chars: int = 400_000) -> str:
    """A PNG of ``w`` x ``h`` as a data URL of at least ``chars`` base64 characters (what
    follows its header is padding): the size of a photo sent inline."""
    return data_url(png(w, h) + bytes(chars * 3 // 4))
