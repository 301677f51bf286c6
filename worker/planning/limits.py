"""The provider's limits, as a value (defaults from the seed document)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one provider message may hold, and which numbers may be texted."""

    body_max_bytes: int = 600  # UTF-8 bytes of a text body (SMS and MMS)
    mms_max_attachments: int = 2
    mms_payload_max_bytes: int = 600_000  # body bytes + file bytes of one MMS
    shrink_images: bool = False  # shrink JPEG/PNG with Pillow to fit instead of refusing
    image_max_bytes: int = 20_000_000  # largest JPEG/PNG file read to be shrunk
    image_max_pixels: int = 24_000_000  # largest image decoded to be shrunk (from its header)
    max_parts: int = 10  # most provider messages one request may become (a runaway-cost guard)
    default_region: str = "US"
    allowed_country_codes: tuple[int, ...] = (1,)

    @property
    def request_max_bytes(self) -> int:
        """The most a request can carry at all (every part full): a bound checked before any work
        that grows with the input."""
        return self.max_parts * self.mms_payload_max_bytes

    @property
    def request_max_files(self) -> int:
        """The most files a request can carry at all."""
        return self.max_parts * self.mms_max_attachments
