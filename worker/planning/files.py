"""Attachments: recognised by their content, which must agree with their name."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from worker.planning.errors import PlanningError, Problem

# Type by magic bytes; text has none and is recognised by decoding as UTF-8 instead.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
TYPE_BY_EXTENSION = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".txt": "text/plain",
}
_NAMES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "text/plain": "text"}


@dataclass(frozen=True)
class FileInput:
    """A file the caller wants to send: its name and its bytes."""

    name: str
    data: bytes

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> FileInput:
        """Read a file from disk; raises PlanningError if it cannot be read."""
        try:
            return cls(Path(path).name, Path(path).read_bytes())
        except OSError as error:
            raise PlanningError(
                [Problem("attachments", f"cannot read {os.fspath(path)}: {error.strerror}")]
            ) from None


@dataclass(frozen=True)
class Attachment:
    """A checked file as it will be sent."""

    filename: str
    content_type: str  # image/jpeg, image/png, image/gif, text/plain
    data: bytes
    from_body: bool = False  # True for a .txt carrying the rest of a long body

    @property
    def size(self) -> int:
        """Bytes in the payload."""
        return len(self.data)


def sniff(data: bytes) -> str | None:
    """The content type the bytes really are, or None if none we can send."""
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain" if "\x00" not in text else None


def clean_name(name: str) -> str:
    """The file's own name: no directories (a name is never a path at the provider), no controls."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[\x00-\x1f\x7f]", "", base).strip()


def check_file(file: FileInput, field: str) -> Attachment | Problem:
    """The attachment, or the problem with it."""
    name = clean_name(file.name) or "(unnamed)"
    extension = Path(name).suffix.lower()
    claimed = TYPE_BY_EXTENSION.get(extension)
    if claimed is None:
        return Problem(
            field, f"{name}: type {extension or '(none)'} not allowed; send .jpg, .png, .gif or .txt"
        )
    if not file.data:
        return Problem(field, f"{name}: the file is empty")
    actual = sniff(file.data)
    if actual is None and claimed == "text/plain":
        return Problem(field, f"{name}: a .txt file must be UTF-8 text")
    if actual != claimed:
        what = _NAMES.get(actual or "", "not an image we can send")
        return Problem(field, f"{name}: the name says {_NAMES[claimed]} but the content is {what}")
    return Attachment(name, claimed, file.data)
