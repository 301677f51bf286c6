"""Attachments: read only as far as their limit, recognised by their content, which must agree with
their name."""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from worker.planning.errors import PlanningError, Problem
from worker.planning.limits import Limits

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

# No following a link (O_NOFOLLOW: refused atomically, not between a check and the open), and no
# waiting on a FIFO with no writer (O_NONBLOCK: the open returns, and the type check refuses it).
_OPEN_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(ValueError):
    """Raised when a file is not read: not a regular file, a symbolic link, unreadable, too big."""


def read_regular_file(path: str | os.PathLike[str], max_bytes: int, *, limit: str) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (`limit` says what bounds it, for the
    error). Raises FileRefused otherwise, having read at most `max_bytes` + 1 bytes.

    A symbolic link is refused rather than followed: it can point at any file the producer may read
    (a key, /dev/zero), and the name a caller checked would not be the file sent. FIFOs, devices and
    directories are refused (one hangs, one never ends). The size is checked before reading; the
    read is bounded too, as a file may grow meanwhile and /proc files report a size of 0.
    """
    try:
        if os.path.islink(path):
            raise FileRefused("is a symbolic link; give the file it points to")
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        if error.errno == errno.ELOOP:  # it became a link after the check above
            raise FileRefused("is a symbolic link; give the file it points to") from None
        raise FileRefused(f"cannot read it: {error.strerror}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "an unknown kind of file")
            raise FileRefused(f"is {kind}, not a regular file")
        if info.st_size > max_bytes:
            raise FileRefused(f"{info.st_size:,} bytes is more than {limit} ({max_bytes:,})")
        with os.fdopen(descriptor, "rb", buffering=0, closefd=False) as stream:
            data = read_at_most(stream, max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        raise FileRefused(f"more than {limit} ({max_bytes:,} bytes)")
    return data


def read_at_most(stream: BinaryIO, count: int) -> bytes:
    """Up to `count` bytes of the stream, however few each read returns; never more."""
    chunks: list[bytes] = []
    left = count
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class FileInput:
    """A file the caller wants to send: its name and its bytes."""

    name: str
    data: bytes

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], max_bytes: int = Limits().mms_payload_max_bytes
    ) -> FileInput:
        """Read a file from disk: a regular file (not a link) of an allowed type and at most
        `max_bytes`, checked before it is read; raises PlanningError otherwise."""
        shown = os.fspath(path)
        problem = type_problem(Path(shown).name, "attachments")
        if isinstance(problem, Problem):
            raise PlanningError([problem])
        try:
            return cls(Path(shown).name, read_regular_file(path, max_bytes, limit="one MMS may carry"))
        except FileRefused as error:
            raise PlanningError([Problem("attachments", f"{shown}: {error}")]) from None


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


def type_problem(name: str, field: str) -> str | Problem:
    """The content type a file's name claims, or the problem with it (told by the name alone, so
    before anything is read)."""
    shown = clean_name(name) or "(unnamed)"
    extension = Path(shown).suffix.lower()
    claimed = TYPE_BY_EXTENSION.get(extension)
    if claimed is None:
        return Problem(
            field, f"{shown}: type {extension or '(none)'} not allowed; send .jpg, .png, .gif or .txt"
        )
    return claimed


def check_file(file: FileInput, field: str, max_bytes: int, limit: str) -> Attachment | Problem:
    """The attachment, or the problem with it; one over `max_bytes` (`limit` says what bounds it) is
    refused before its content is looked at."""
    if not isinstance(file.name, str) or not isinstance(file.data, bytes | bytearray):
        return Problem(field, "a FileInput needs a name (text) and data (bytes)")
    name = clean_name(file.name) or "(unnamed)"
    claimed = type_problem(name, field)
    if isinstance(claimed, Problem):
        return claimed
    if not file.data:
        return Problem(field, f"{name}: the file is empty")
    if len(file.data) > max_bytes:
        return Problem(field, f"{name}: {len(file.data):,} bytes is more than {limit} ({max_bytes:,})")
    actual = sniff(file.data)
    if actual is None and claimed == "text/plain":
        return Problem(field, f"{name}: a .txt file must be UTF-8 text")
    if actual != claimed:
        what = _NAMES.get(actual or "", "not an image we can send")
        return Problem(field, f"{name}: the name says {_NAMES[claimed]} but the content is {what}")
    return Attachment(name, claimed, bytes(file.data))
