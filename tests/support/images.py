"""Images for tests, made byte by byte: a PNG can declare any size without holding the pixels."""

from __future__ import annotations

import struct
import zlib


def png_declaring(width: int, height: int, padding: int = 10_000) -> bytes:
    """A small PNG whose header declares `width`×`height` pixels (a decompression bomb's shape),
    padded with a text chunk (so that it can be over a payload limit and shrinking is tried)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"padding\x00" + b"x" * padding)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
