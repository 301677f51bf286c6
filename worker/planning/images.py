"""Optional: shrink a JPEG or PNG with Pillow so that it fits an MMS (the provider does no
transcoding). Off unless the `shrink_images` setting is on; Pillow is the `images` extra."""

from __future__ import annotations

import io

from worker.planning.files import Attachment

MAX_ROUNDS = 12


def shrink_to_fit(file: Attachment, max_bytes: int) -> Attachment | None:
    """A smaller copy of the image within `max_bytes`, or None if it cannot be done here."""
    try:
        from PIL import Image
    except ImportError:  # Pillow is optional
        return None
    image = Image.open(io.BytesIO(file.data))
    fmt = "JPEG" if file.content_type == "image/jpeg" else "PNG"
    width, height = image.size
    for _ in range(MAX_ROUNDS):
        width, height = max(1, int(width * 0.8)), max(1, int(height * 0.8))
        buffer = io.BytesIO()
        resized = image.resize((width, height))
        if fmt == "JPEG":
            resized.convert("RGB").save(buffer, fmt, quality=80, optimize=True)
        else:
            resized.save(buffer, fmt, optimize=True)
        if buffer.tell() <= max_bytes:
            return Attachment(file.filename, file.content_type, buffer.getvalue())
    return None
