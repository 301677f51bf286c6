"""Optional: shrink a JPEG or PNG with Pillow so that it fits an MMS (the provider does no
transcoding). Off unless the `shrink_images` setting is on; Pillow is the `images` extra.

An image is bounded in pixels before anything is decoded (its header says how many), so that a
small file declaring a huge picture (a decompression bomb) costs nothing.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from typing import Any

from worker.planning.files import Attachment

MAX_ROUNDS = 12
# Larger images are first brought down in one cheap step (JPEG decodes at a fraction of its size)
# to at most this many pixels: a 600 KB MMS holds a few megapixels at most.
WORKING_PIXELS = 4_000_000
_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
_OBJECT = re.compile(r"\s*<[^<>]* object at 0x[0-9a-f]+>")  # Pillow names its buffer: noise to a caller


class ImageRefused(ValueError):
    """Raised for an image not shrunk: more pixels than allowed, or one Pillow cannot read."""


def shrink_to_fit(file: Attachment, max_bytes: int, max_pixels: int) -> Attachment | None:
    """A smaller copy of the image within `max_bytes`, or None if it cannot be done here (no
    Pillow, or still too big after every round). Raises ImageRefused for an image of more than
    `max_pixels` or one that cannot be read."""
    try:
        from PIL import Image
    except ImportError:  # Pillow is optional
        return None
    fmt = _FORMATS[file.content_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(file.data), formats=[fmt])
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > max_pixels:
                raise ImageRefused(f"{width:,}×{height:,} is more pixels than allowed ({max_pixels:,})")
            return _shrink(image, file, fmt, max_bytes)
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        allowed = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
        raise ImageRefused(
            f"declares more pixels than allowed ({allowed:,}), like a decompression bomb"
        ) from None
    except Exception as error:
        # Hostile files make Pillow raise many types (OSError, SyntaxError, ValueError,
        # DecompressionBombError, zlib and struct errors): to the caller each means "cannot read".
        reason = _OBJECT.sub("", str(error)).strip()[:120] or type(error).__name__
        raise ImageRefused(f"cannot be read as a {fmt} image: {reason}") from None


def _shrink(image: Any, file: Attachment, fmt: str, max_bytes: int) -> Attachment | None:
    """Re-encode smaller until it fits; each round aims at the size the last one says will fit (the
    bytes of an image grow about with its pixels), so few rounds are needed."""
    width, height = image.size
    # The pixels the limit holds at this file's density, doubled (re-encoding often packs tighter).
    estimate = 2 * width * height * max_bytes / len(file.data)
    start = min(WORKING_PIXELS, estimate)
    if width * height > start:
        scale = math.sqrt(start / (width * height))
        image.thumbnail((max(1, int(width * scale)), max(1, int(height * scale))), reducing_gap=2.0)
    size = image.size
    for _ in range(MAX_ROUNDS):
        data = _encode(image if size == image.size else image.resize(size), fmt)
        if len(data) <= max_bytes:
            return Attachment(file.filename, file.content_type, data)
        factor = min(0.8, 0.95 * math.sqrt(max_bytes / len(data)))
        size = (max(1, int(size[0] * factor)), max(1, int(size[1] * factor)))
    return None


def _encode(image: Any, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, fmt, quality=80, optimize=True)
    else:
        image.save(buffer, fmt, optimize=True)
    return buffer.getvalue()
