"""Planning rules case by case: the SMS/MMS boundary, attachments, and every error named."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.planning import (
    FileInput,
    Limits,
    PartKind,
    PlanningError,
    normalize_number,
    plan_message,
    reassemble,
)

LINE, TO = "5556661234", "(206) 555-1234"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100
GIF = b"GIF89a" + b"\x00" * 100


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("a" * 600, PartKind.SMS),
        ("a" * 601, PartKind.MMS),
        ("a" * 598 + "é", PartKind.SMS),  # 2-byte character ends exactly at 600
        ("a" * 599 + "é", PartKind.MMS),  # ... or straddles it
        ("a" * 597 + "€", PartKind.SMS),  # 3 bytes
        ("a" * 598 + "€", PartKind.MMS),
        ("a" * 596 + "😀", PartKind.SMS),  # 4 bytes
        ("a" * 597 + "😀", PartKind.MMS),
    ],
)
def test_600_bytes_is_an_sms_and_601_an_mms(body: str, kind: PartKind) -> None:
    plan = plan_message(LINE, TO, body)
    assert [p.kind for p in plan.parts] == [kind]
    assert reassemble(plan)[0] == body


@pytest.mark.parametrize("char", ["é", "€", "😀", "👍🏽", "🇺🇸"])
def test_a_character_across_the_limit_moves_whole_to_the_txt(char: str) -> None:
    body = "a" * 599 + char + "tail"
    plan = plan_message(LINE, TO, body)
    [part] = plan.parts
    assert part.body == "a" * 599
    assert part.attachments[0].data.decode() == char + "tail"


def test_the_cut_prefers_a_word_boundary_near_the_limit() -> None:
    body = ("word " * 130).strip()
    plan = plan_message(LINE, TO, body)
    assert plan.parts[0].body.endswith("word ")
    assert plan.parts[0].body_bytes > 500


def test_numbers_are_normalised_to_e164() -> None:
    plan = plan_message("ptn:/5556661234", "+1 206-555-1234", "hi")
    assert (plan.line, plan.to) == ("+15556661234", "+12065551234")


@pytest.mark.parametrize(
    ("to", "says"),
    [
        ("", "required"),
        ("hello", "not a phone number"),
        ("12", "not a valid phone number"),
        ("+44 7911 123456", "+44 numbers cannot be texted"),
        ("+1 900 555 1234", "cannot receive texts"),
        ("5556661234", "not a valid phone number"),
    ],
)
def test_recipients_that_cannot_be_texted_are_named(to: str, says: str) -> None:
    with pytest.raises(PlanningError) as caught:
        plan_message(LINE, to, "hi")
    assert [p.field for p in caught.value.problems] == ["to"]
    assert says in str(caught.value)


def test_two_images_fit_one_mms_and_a_third_starts_the_next() -> None:
    plan = plan_message(
        LINE, TO, "pics", [FileInput("a.png", PNG), FileInput("b.jpg", JPEG), FileInput("c.gif", GIF)]
    )
    assert [p.kind for p in plan.parts] == [PartKind.MMS, PartKind.MMS]
    assert [[a.filename for a in p.attachments] for p in plan.parts] == [["a.png", "b.jpg"], ["c.gif"]]
    assert plan.parts[0].body == "pics" and plan.parts[1].body == ""
    assert plan.summary() == {
        "parts": 2,
        "sms": 0,
        "mms": 2,
        "files": 3,
        "body_bytes": 4,
        "payload_bytes": 4 + len(PNG) + len(JPEG) + len(GIF),
    }


def test_files_too_big_together_are_split_by_payload() -> None:
    limits = Limits(mms_payload_max_bytes=250)
    plan = plan_message(LINE, TO, None, [FileInput("a.png", PNG), FileInput("b.png", PNG + PNG)], limits)
    assert [len(p.attachments) for p in plan.parts] == [1, 1]


def test_files_are_read_from_paths(tmp_path: Path) -> None:
    picture = tmp_path / "photo.jpeg"
    picture.write_bytes(JPEG)
    plan = plan_message(LINE, TO, None, [str(picture)])
    assert plan.parts[0].attachments[0].content_type == "image/jpeg"


@pytest.mark.parametrize(
    ("file", "says"),
    [
        (FileInput("virus.exe", b"MZ\x90"), "type .exe not allowed"),
        (FileInput("noext", b"hello"), "type (none) not allowed"),
        (FileInput("empty.png", b""), "the file is empty"),
        (FileInput("lie.png", JPEG), "the name says PNG but the content is JPEG"),
        (FileInput("lie.jpg", b"just text"), "the name says JPEG but the content is text"),
        (FileInput("bin.gif", b"\x00\x01\x02"), "the name says GIF but the content is not an image"),
        (FileInput("bad.txt", b"\xff\xfe\x00bad"), "must be UTF-8 text"),
        (FileInput("nul.txt", b"a\x00b"), "must be UTF-8 text"),
        (FileInput("huge.png", PNG + b"\x00" * 600_000), "more than one MMS may carry"),
    ],
)
def test_each_bad_file_is_named(file: FileInput, says: str) -> None:
    with pytest.raises(PlanningError) as caught:
        plan_message(LINE, TO, "hi", [file])
    assert caught.value.problems[0].field == "attachments[1]"
    assert file.name in str(caught.value) and says in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PlanningError, match=r"gone\.png: cannot read"):
        plan_message(LINE, TO, "hi", [str(tmp_path / "gone.png")])


@pytest.mark.parametrize("body", [None, "", "   \n\t "])
def test_nothing_to_send_is_an_error(body: str | None) -> None:
    with pytest.raises(PlanningError, match="nothing to send"):
        plan_message(LINE, TO, body)


def test_an_empty_body_is_named_beside_a_bad_number() -> None:
    with pytest.raises(PlanningError) as caught:
        plan_message(LINE, "12", "")
    assert {p.field for p in caught.value.problems} == {"to", "body"}


@pytest.mark.parametrize(
    ("body", "says"),
    [(b"bytes", "must be text"), ("nul\x00", "control characters"), ("bad\ud800", "lone surrogate")],
)
def test_bodies_that_are_not_text_are_named(body: object, says: str) -> None:
    with pytest.raises(PlanningError, match=says):
        plan_message(LINE, TO, body)  # type: ignore[arg-type]


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(PlanningError) as caught:
        plan_message("nope", "12", "x", [FileInput("a.exe", b"MZ"), FileInput("b.png", JPEG)])
    assert [p.field for p in caught.value.problems] == ["line", "to", "attachments[1]", "attachments[2]"]


def test_a_whitespace_body_with_files_is_dropped() -> None:
    plan = plan_message(LINE, TO, "  ", [FileInput("a.png", PNG)])
    assert plan.parts[0].body == ""


def test_images_can_be_shrunk_to_fit_when_asked() -> None:
    pil = pytest.importorskip("PIL.Image")
    import io

    buffer = io.BytesIO()
    pil.effect_noise((800, 800), 90).convert("RGB").save(buffer, "PNG")
    big = FileInput("noise.png", buffer.getvalue())
    limits = Limits(mms_payload_max_bytes=100_000, shrink_images=True)
    assert big.data.__len__() > limits.mms_payload_max_bytes
    plan = plan_message(LINE, TO, None, [big], limits)
    assert plan.parts[0].payload_bytes <= 100_000
    with pytest.raises(PlanningError, match="more than one MMS may carry"):
        plan_message(LINE, TO, None, [big], Limits(mms_payload_max_bytes=100_000))


def test_the_line_may_be_a_fictional_but_possible_number() -> None:
    assert normalize_number("5556661234", field="line") == "+15556661234"


def test_a_request_that_would_become_too_many_messages_is_refused() -> None:
    limits = Limits(max_parts=3, mms_payload_max_bytes=150)  # one file per part
    with pytest.raises(PlanningError, match="needs 4 provider messages, more than the 3"):
        plan_message(LINE, TO, None, [FileInput(f"{n}.png", PNG) for n in range(4)], limits)
    assert (
        len(plan_message(LINE, TO, None, [FileInput(f"{n}.png", PNG) for n in range(3)], limits).parts) == 3
    )


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("../../etc/passwd.png", "passwd.png"),
        ("C:\\photos\\cat.png", "cat.png"),
        ("a\x00b\nc.png", "abc.png"),
    ],
)
def test_file_names_are_reduced_to_a_plain_name(given: str, sent: str) -> None:
    plan = plan_message(LINE, TO, None, [FileInput(given, PNG)])
    assert plan.parts[0].attachments[0].filename == sent
