"""Input is bounded before it costs anything: files are read only if regular and only up to their
limit, a body too big for any plan is refused without being packed, and an image is bounded in
pixels from its header before Pillow decodes it."""

from __future__ import annotations

import io
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import worker.planning.plan as planning
from tests.support.images import png_declaring
from worker.planning import FileInput, Limits, PlanningError, plan_message
from worker.planning.files import FileRefused, read_at_most, read_regular_file

LINE, TO = "5556661234", "(206) 555-1234"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100


DEFAULT = Limits()


def _problem(attachments: list[Any], limits: Limits = DEFAULT) -> str:
    with pytest.raises(PlanningError) as caught:
        plan_message(LINE, TO, "hi", attachments, limits)
    assert [p.field for p in caught.value.problems] == ["attachments[1]"], caught.value
    return caught.value.problems[0].message


def _bytes_read() -> int:
    """Bytes this process has read so far, as the kernel counts them (Linux)."""
    with open("/proc/self/io") as counters:
        return int(next(line for line in counters if line.startswith("rchar:")).split()[1])


needs_proc = pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc")


# Files: regular ones only, never through a link, never more than the limit.


def test_a_symbolic_link_is_refused_not_followed(tmp_path: Path) -> None:
    (tmp_path / "real.png").write_bytes(PNG)
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    assert "link.png: is a symbolic link" in _problem([str(tmp_path / "link.png")])


def test_a_link_to_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    assert "is a symbolic link" in _problem([tmp_path / "zero.png"])


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[str] = []
    reader = threading.Thread(target=lambda: outcome.append(_problem([str(fifo)])), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive():  # it blocked in open(): let it go before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert outcome and "is a FIFO (named pipe), not a regular file" in outcome[0]


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "album.png").mkdir()
    assert "album.png: is a directory, not a regular file" in _problem([str(tmp_path / "album.png")])


@needs_proc
def test_an_oversize_file_is_refused_from_its_size_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\x00" * 2_000_000)
    before = _bytes_read()
    message = _problem([str(big)])
    assert _bytes_read() - before < 100_000  # not the 2 MB
    assert "2,000,108 bytes is more than one MMS may carry (600,000)" in message


@needs_proc
def test_a_file_with_a_disallowed_type_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "film.mp4"
    big.write_bytes(b"\x00" * 2_000_000)
    before = _bytes_read()
    assert "type .mp4 not allowed" in _problem([str(big)])
    assert _bytes_read() - before < 100_000


def test_a_device_is_refused_by_the_reader() -> None:
    with pytest.raises(FileRefused, match="is a character device, not a regular file"):
        read_regular_file("/dev/zero", 100, limit="the test's limit")


@needs_proc
def test_a_file_longer_than_its_reported_size_is_read_only_to_the_limit_plus_one() -> None:
    # /proc files are regular but report a size of 0: only the bounded read stops them.
    assert Path("/proc/self/maps").stat().st_size == 0
    with pytest.raises(FileRefused, match=r"more than the test's limit \(100 bytes\)"):
        read_regular_file("/proc/self/maps", 100, limit="the test's limit")


class _EndlessStream(io.RawIOBase):
    """/dev/zero as a stream that counts what it hands out, in small pieces."""

    def __init__(self) -> None:
        self.handed_out = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert size >= 0, "an unbounded read of an endless stream"
        piece = b"\x00" * min(size, 7)
        self.handed_out += len(piece)
        return piece


def test_the_read_takes_at_most_the_bytes_asked_however_the_stream_hands_them_out() -> None:
    stream = _EndlessStream()
    assert len(read_at_most(stream, 601)) == 601
    assert stream.handed_out == 601


# Bodies and file lists: refused by their size before any work that grows with them.


@pytest.fixture
def no_packing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Packing or cutting text fails the test: a refusal must come before either."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the body was packed or cut")

    monkeypatch.setattr(planning, "_pack", forbidden)
    monkeypatch.setattr(planning, "cut", forbidden)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("x" * 10_000_000, "at least 10,000,000 bytes is more than one request may carry"),
        ("€" * 2_500_000, "7,500,000 bytes is more than one request may carry"),  # few characters, many bytes
        ("\x00" * 7_000_000, "at least 7,000,000 bytes"),  # not scanned character by character either
    ],
)
def test_a_body_too_big_for_any_plan_is_refused_without_packing(
    no_packing: None, body: str, says: str
) -> None:
    with pytest.raises(PlanningError) as caught:
        plan_message(LINE, TO, body)
    assert [p.field for p in caught.value.problems] == ["body"]
    assert says in str(caught.value) and "(10 provider messages of 600,000 bytes)" in str(caught.value)


def test_the_bound_follows_the_limits(no_packing: None) -> None:
    limits = Limits(max_parts=2, mms_payload_max_bytes=1000)
    with pytest.raises(PlanningError, match="2,001 bytes is more than one request may carry"):
        plan_message(LINE, TO, "x" * 2000 + "é", limits=limits)


def test_a_body_within_the_bound_is_still_planned_and_checked_after_packing() -> None:
    limits = Limits(max_parts=2, mms_payload_max_bytes=1000)
    assert len(plan_message(LINE, TO, "x" * 1900, limits=limits).parts) == 2
    with pytest.raises(PlanningError, match="needs 3 provider messages"):
        plan_message(LINE, TO, "x" * 1900, [FileInput("a.png", PNG)], limits)


def test_more_files_than_any_plan_carries_are_refused_before_one_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file was checked")

    monkeypatch.setattr(planning, "check_file", forbidden)
    endless = itertools.repeat(FileInput("a.png", PNG))
    with pytest.raises(PlanningError) as caught:
        plan_message(LINE, TO, "hi", endless)
    assert [str(p) for p in caught.value.problems] == [
        "attachments: more than 20 files, more than one request may carry (10 provider messages of 2 files)"
    ]


@pytest.mark.parametrize(
    ("attachments", "field", "says"),
    [
        ("photo.png", "attachments", "must be a list of files, not str"),
        (Path("photo.png"), "attachments", "must be a list of files, not PosixPath"),
        (42, "attachments", "must be a list of files, not int"),
        ([42], "attachments[1]", "must be a path or a FileInput, not int"),
        ([None], "attachments[1]", "must be a path or a FileInput, not NoneType"),
        ([FileInput("a.png", "text")], "attachments[1]", "a FileInput needs a name (text) and data (bytes)"),  # type: ignore[arg-type]
        ([FileInput(7, PNG)], "attachments[1]", "a FileInput needs a name (text) and data (bytes)"),  # type: ignore[arg-type]
    ],
)
def test_attachments_of_the_wrong_shape_are_named(attachments: Any, field: str, says: str) -> None:
    if isinstance(attachments, Path) and os.name != "posix":
        pytest.skip("the path class is named after the platform")
    with pytest.raises(PlanningError) as caught:
        plan_message(LINE, TO, "hi", attachments)
    assert [(p.field, p.message) for p in caught.value.problems] == [(field, says)]


# Images to shrink: bounded in bytes and pixels, and whatever Pillow says is a named problem.

SHRINK = Limits(mms_payload_max_bytes=5_000, shrink_images=True)


@pytest.fixture
def pillow() -> Iterator[Any]:
    yield pytest.importorskip("PIL.Image")


def test_a_decompression_bomb_is_a_problem_naming_the_file(pillow: Any) -> None:
    message = _problem([FileInput("bomb.png", png_declaring(100_000, 100_000))], SHRINK)
    assert message == "bomb.png: declares more pixels than allowed (24,000,000), like a decompression bomb"


def test_a_bomb_above_pillow_s_own_bound_is_named_with_that_bound(pillow: Any) -> None:
    limits = Limits(mms_payload_max_bytes=5_000, shrink_images=True, image_max_pixels=10**12)
    message = _problem([FileInput("bomb.png", png_declaring(100_000, 100_000))], limits)
    bound = f"{pillow.MAX_IMAGE_PIXELS:,}"
    assert message == f"bomb.png: declares more pixels than allowed ({bound}), like a decompression bomb"


def test_a_header_declaring_more_pixels_than_the_setting_is_refused(pillow: Any) -> None:
    message = _problem([FileInput("tall.png", png_declaring(4_000, 6_001))], SHRINK)
    assert message == "tall.png: 4,000×6,001 is more pixels than allowed (24,000,000)"


def test_an_image_over_the_pixel_bound_is_refused_before_it_is_decoded(
    pillow: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = io.BytesIO()
    pillow.effect_noise((2000, 1000), 90).save(buffer, "PNG")
    limits = Limits(mms_payload_max_bytes=5_000, shrink_images=True, image_max_pixels=1_000_000)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(pillow.Image, "load", forbidden)
    message = _problem([FileInput("wide.png", buffer.getvalue())], limits)
    assert message == "wide.png: 2,000×1,000 is more pixels than allowed (1,000,000)"


@pytest.mark.parametrize(
    ("file", "says"),
    [
        (FileInput("broken.png", PNG + b"\x00" * 6_000), "broken.png: cannot be read as a PNG image"),
        (FileInput("broken.jpg", JPEG + b"\x00" * 6_000), "broken.jpg: cannot be read as a JPEG image"),
        (FileInput("huge.png", png_declaring(10, 10, padding=30_000)), "the largest image shrunk to fit"),
    ],
)
def test_an_image_pillow_cannot_read_is_a_problem_naming_it(pillow: Any, file: FileInput, says: str) -> None:
    limits = Limits(mms_payload_max_bytes=5_000, shrink_images=True, image_max_bytes=20_000)
    assert says in _problem([file], limits)


def test_a_large_image_is_still_shrunk_within_the_bounds(pillow: Any) -> None:
    buffer = io.BytesIO()
    pillow.effect_noise((3000, 2000), 60).convert("RGB").save(buffer, "JPEG", quality=95)
    assert len(buffer.getvalue()) > 600_000
    plan = plan_message(
        LINE, TO, None, [FileInput("photo.jpg", buffer.getvalue())], Limits(shrink_images=True)
    )
    [attachment] = plan.parts[0].attachments
    assert attachment.content_type == "image/jpeg" and attachment.size <= 600_000
    assert pillow.open(io.BytesIO(attachment.data)).size[0] < 3000
