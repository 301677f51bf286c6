"""From a request to send to a plan: one SMS, or MMS parts that each respect every limit.

A short text is an SMS. A long one is an MMS whose body is the head of the text and whose .txt
attachment(s) carry the rest, so that body + attachments give back the text exactly. Files follow
in the caller's order; whatever does not fit one MMS (count or payload) goes in the next, in order.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from worker.planning.errors import PlanningError, Problem
from worker.planning.files import Attachment, FileInput, check_file, type_problem
from worker.planning.images import ImageRefused, shrink_to_fit
from worker.planning.limits import Limits
from worker.planning.numbers import normalize_number
from worker.planning.text import cut, utf8_len

_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # all but \t \n \r
_SHRINKABLE = ("image/jpeg", "image/png")


class PartKind(StrEnum):
    """How a part is sent and billed."""

    SMS = "sms"
    MMS = "mms"


@dataclass(frozen=True)
class PlannedPart:
    """One provider message of a plan."""

    index: int  # 0-based send order
    kind: PartKind
    body: str
    attachments: tuple[Attachment, ...] = ()

    @property
    def body_bytes(self) -> int:
        """UTF-8 bytes of the body."""
        return utf8_len(self.body)

    @property
    def payload_bytes(self) -> int:
        """Body bytes plus every file's bytes."""
        return self.body_bytes + sum(a.size for a in self.attachments)


@dataclass(frozen=True)
class Plan:
    """What will be sent, before it is: the cost is known in advance."""

    line: str  # E.164
    to: str  # E.164
    parts: tuple[PlannedPart, ...]

    def summary(self) -> dict[str, int]:
        """Counts and sizes, by what they cost."""
        return {
            "parts": len(self.parts),
            "sms": sum(p.kind is PartKind.SMS for p in self.parts),
            "mms": sum(p.kind is PartKind.MMS for p in self.parts),
            "files": sum(len(p.attachments) for p in self.parts),
            "body_bytes": sum(p.body_bytes for p in self.parts),
            "payload_bytes": sum(p.payload_bytes for p in self.parts),
        }


def plan_message(
    line: str,
    to: str,
    body: str | None = None,
    attachments: Iterable[FileInput | str | os.PathLike[str]] = (),
    limits: Limits = Limits(),
) -> Plan:
    """Plan a send, or raise PlanningError listing every problem with it."""
    problems: list[Problem] = []
    line_number = _number(line, "line", limits, problems)
    to_number = _number(to, "to", limits, problems)
    text = _check_body(body, limits, problems)
    files = _check_files(attachments, limits, problems)
    content_problems = any(p.field == "body" or p.field.startswith("attachments") for p in problems)
    if not content_problems and not text.strip() and not files:
        problems.append(Problem("body", "nothing to send: the text is empty and there are no files"))
    if problems:
        raise PlanningError(problems)
    assert line_number and to_number
    if not files and utf8_len(text) <= limits.body_max_bytes:
        return Plan(line_number, to_number, (PlannedPart(0, PartKind.SMS, text),))
    parts = _pack(text if text.strip() else "", files, limits)
    if len(parts) > limits.max_parts:
        what = (
            f"needs {len(parts)} provider messages, more than the {limits.max_parts} one request may become"
        )
        raise PlanningError([Problem("body" if text.strip() else "attachments", what)])
    return Plan(line_number, to_number, parts)


def _number(raw: str, field: str, limits: Limits, problems: list[Problem]) -> str | None:
    try:
        return normalize_number(raw, field=field, limits=limits)
    except PlanningError as error:
        problems.extend(error.problems)
        return None


def _check_body(body: object, limits: Limits, problems: list[Problem]) -> str:
    """The body, if it is text that some plan could carry. A body too big for any plan is refused
    before it is encoded or scanned, so its cost is bounded by the limit, not by the body."""
    if body is None:
        return ""
    if not isinstance(body, str):
        problems.append(Problem("body", f"must be text, not {type(body).__name__}"))
        return ""
    largest = limits.request_max_bytes
    if len(body) > largest:  # a character is at least one byte: too big, without encoding it
        problems.append(_body_too_big(f"at least {len(body):,} bytes", limits))
        return ""
    try:
        size = utf8_len(body)
    except UnicodeEncodeError:
        problems.append(Problem("body", "is not valid Unicode text (lone surrogate)"))
        return ""
    if size > largest:
        problems.append(_body_too_big(f"{size:,} bytes", limits))
        return ""
    bad = sorted(set(_CONTROLS.findall(body)))
    if bad:
        problems.append(Problem("body", f"contains control characters {', '.join(repr(c) for c in bad)}"))
    return body


def _body_too_big(size: str, limits: Limits) -> Problem:
    return Problem(
        "body",
        f"{size} is more than one request may carry ({limits.max_parts} provider messages "
        f"of {limits.mms_payload_max_bytes:,} bytes)",
    )


def _check_files(inputs: object, limits: Limits, problems: list[Problem]) -> list[Attachment]:
    """The caller's files, each checked; none is read if there are more than any plan can carry,
    and each is read only up to its limit."""
    if isinstance(inputs, str | bytes | os.PathLike | FileInput) or not isinstance(inputs, Iterable):
        problems.append(Problem("attachments", f"must be a list of files, not {type(inputs).__name__}"))
        return []
    most = limits.request_max_files
    given = list(itertools.islice(inputs, most + 1))
    if len(given) > most:
        problems.append(
            Problem(
                "attachments",
                f"more than {most} files, more than one request may carry ({limits.max_parts} provider "
                f"messages of {limits.mms_max_attachments} files)",
            )
        )
        return []
    checked: list[Attachment] = []
    for number, item in enumerate(given, start=1):
        result = _check_file(item, f"attachments[{number}]", limits)
        if isinstance(result, Problem):
            problems.append(result)
        else:
            checked.append(result)
    return checked


def _check_file(given: object, field: str, limits: Limits) -> Attachment | Problem:
    if not isinstance(given, FileInput | str | os.PathLike):
        return Problem(field, f"must be a path or a FileInput, not {type(given).__name__}")
    name = given.name if isinstance(given, FileInput) else os.fspath(given)
    max_bytes, limit = _read_limit(name if isinstance(name, str) else "", limits)
    try:
        file = given if isinstance(given, FileInput) else FileInput.from_path(given, max_bytes)
    except PlanningError as error:
        return Problem(field, error.problems[0].message)
    result = check_file(file, field, max_bytes, limit)
    if isinstance(result, Attachment) and result.size > limits.mms_payload_max_bytes:
        return _too_big(result, field, limits)
    return result


def _read_limit(name: str, limits: Limits) -> tuple[int, str]:
    """The most bytes of this file worth reading, and what bounds them: an image that may be shrunk
    can be larger than one MMS, anything else cannot."""
    if limits.shrink_images and type_problem(name, "") in _SHRINKABLE:
        return limits.image_max_bytes, "the largest image shrunk to fit"
    return limits.mms_payload_max_bytes, "one MMS may carry"


def _too_big(file: Attachment, field: str, limits: Limits) -> Attachment | Problem:
    limit = limits.mms_payload_max_bytes
    if limits.shrink_images and file.content_type in _SHRINKABLE:
        try:
            smaller = shrink_to_fit(file, limit, limits.image_max_pixels)
        except ImageRefused as error:
            return Problem(field, f"{file.filename}: {error}")
        if smaller is not None:
            return smaller
    return Problem(field, f"{file.filename}: {file.size:,} bytes is more than one MMS may carry ({limit:,})")


@dataclass
class _Packer:
    """Fills MMS parts in order, starting a new part when the next item does not fit."""

    limits: Limits
    parts: list[PlannedPart] = field(default_factory=list)
    body: str = ""
    files: list[Attachment] = field(default_factory=list)

    def room(self) -> int:
        """Payload bytes left in the current part, or 0 if it cannot take another file."""
        if len(self.files) >= self.limits.mms_max_attachments:
            return 0
        used = utf8_len(self.body) + sum(f.size for f in self.files)
        return self.limits.mms_payload_max_bytes - used

    def new_part(self) -> None:
        """Close the current part (if it holds anything) and open an empty one."""
        if self.body or self.files:
            self.parts.append(PlannedPart(len(self.parts), PartKind.MMS, self.body, tuple(self.files)))
        self.body, self.files = "", []

    def add(self, file: Attachment) -> None:
        """Add a file, in a new part if it does not fit the current one."""
        if file.size > self.room():
            self.new_part()
        self.files.append(file)

    def add_text(self, text: str) -> None:
        """Add the rest of a long body as .txt files, as large as the parts allow."""
        while text:
            head = text[: cut(text, self.room())] if self.room() > 0 else ""
            if not head:
                if not (self.body or self.files):
                    raise PlanningError(
                        [Problem("body", "a single character sequence is larger than an MMS")]
                    )
                self.new_part()
                continue
            self.files.append(
                Attachment(self._text_name(), "text/plain", head.encode("utf-8"), from_body=True)
            )
            text = text[len(head) :]

    def _text_name(self) -> str:
        done = sum(f.from_body for p in self.parts for f in p.attachments) + sum(
            f.from_body for f in self.files
        )
        return "message.txt" if done == 0 else f"message-{done + 1}.txt"

    def finish(self) -> tuple[PlannedPart, ...]:
        """The parts, in send order."""
        self.new_part()
        return tuple(self.parts)


def _pack(text: str, files: list[Attachment], limits: Limits) -> tuple[PlannedPart, ...]:
    packer = _Packer(limits)
    head_end = cut(text, limits.body_max_bytes)
    packer.body = text[:head_end]
    packer.add_text(text[head_end:])
    for file in files:
        packer.add(file)
    return packer.finish()


def reassemble(plan: Plan) -> tuple[str, tuple[Attachment, ...]]:
    """The text and the caller's files a plan sends, in order (what the recipient gets)."""
    if not plan.parts:
        return "", ()
    text = plan.parts[0].body + "".join(
        a.data.decode("utf-8") for p in plan.parts for a in p.attachments if a.from_body
    )
    files = tuple(a for p in plan.parts for a in p.attachments if not a.from_body)
    return text, files
