"""Properties of planning over arbitrary text and file sets: limits hold, nothing is lost,
doubled, reordered or cut inside a character."""

from __future__ import annotations

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.planning import FileInput, Limits, PartKind, plan_message, reassemble
from worker.planning.text import WORD_WINDOW, cut

LINE, TO = "5556661234", "2065551234"
SMALL = Limits(body_max_bytes=40, mms_max_attachments=2, mms_payload_max_bytes=200, max_parts=100_000)
DEFAULT = Limits()

# Text that stresses the cut: emoji with joiners and skin tones, flags, combining marks, CJK, RTL.
TRICKY = [
    "👩‍👩‍👧‍👦",
    "👍🏽",
    "🇺🇸",
    "🇯🇵🇫🇷",
    "é",
    "é",
    "ñ̃̃",
    "漢字",
    "עברית",
    "مرحبا",
    "a",
    " ",
    "\n",
    "ok ",
    "🏳️‍🌈",
]
texts = st.lists(
    st.one_of(
        st.sampled_from(TRICKY), st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
    ),
    max_size=80,
).map("".join)
PNG = b"\x89PNG\r\n\x1a\n"
files = st.lists(
    st.tuples(st.sampled_from(["png", "gif", "txt"]), st.integers(min_value=1, max_value=190)).map(
        lambda kind_size: _file(*kind_size)
    ),
    max_size=5,
)


def _file(kind: str, size: int) -> FileInput:
    if kind == "png":
        return FileInput("p.png", (PNG + b"\x00" * size)[: max(size, len(PNG))])
    if kind == "gif":
        return FileInput("g.gif", (b"GIF89a" + b"\x01" * size)[: max(size, 6)])
    return FileInput("t.txt", ("x" * size).encode())


def _boundaries(text: str) -> set[int]:
    return {0, len(text)} | {m.end() for m in regex.finditer(r"\X", text, flags=regex.DOTALL)}


def _check(body: str, inputs: list[FileInput], limits: Limits) -> None:
    plan = plan_message(LINE, TO, body, inputs, limits)
    for part in plan.parts:
        part.body.encode("utf-8")  # valid UTF-8 (no lone surrogate)
        assert part.body_bytes <= limits.body_max_bytes
        if part.kind is PartKind.SMS:
            assert not part.attachments
        else:
            assert len(part.attachments) <= limits.mms_max_attachments
            assert part.payload_bytes <= limits.mms_payload_max_bytes
    text, sent_files = reassemble(plan)
    expected_text = body if (body.strip() or not inputs) else ""
    assert text == expected_text
    assert [(f.filename, f.data) for f in sent_files] == [(f.name, f.data) for f in inputs]
    # every cut of the text falls on a grapheme boundary of the original
    position, cuts = 0, []
    pieces = [plan.parts[0].body] + [
        a.data.decode() for p in plan.parts for a in p.attachments if a.from_body
    ]
    for piece in pieces[:-1]:
        position += len(piece)
        cuts.append(position)
    assert set(cuts) <= _boundaries(expected_text)


@settings(max_examples=150, deadline=None)
@given(body=texts.filter(lambda t: t.strip()), inputs=files)
def test_small_limits_keep_every_rule(body: str, inputs: list[FileInput]) -> None:
    _check(body, inputs, SMALL)


@settings(max_examples=60, deadline=None)
@given(body=texts.filter(lambda t: t.strip()).map(lambda t: t * 30))
def test_long_texts_at_the_real_limits(body: str) -> None:
    _check(body, [], DEFAULT)


@settings(max_examples=60, deadline=None)
@given(inputs=files.filter(bool), body=st.sampled_from(["", "   ", None]))
def test_files_without_text(inputs: list[FileInput], body: str | None) -> None:
    _check(body or "", inputs, SMALL)


def _reference_cut(text: str, max_bytes: int) -> int:
    """The cut as first written: every cluster walked from the start (slow, plainly right)."""
    if len(text.encode()) <= max_bytes:
        return len(text)
    used, end, word_end, word_used = 0, 0, 0, 0
    for match in regex.finditer(r"\X", text, flags=regex.DOTALL):
        size = len(match.group().encode())
        if used + size > max_bytes:
            break
        used, end = used + size, match.end()
        if match.group().isspace():
            word_end, word_used = end, used
    return word_end if word_end and word_used >= max_bytes * (1 - WORD_WINDOW) else end


# Mostly ASCII (where the fast cut starts its walk late), with what could fool it just there: CR LF,
# marks combining with an ASCII letter or a space, joined emoji, flags.
ascii_heavy = st.lists(
    st.one_of(
        st.sampled_from(
            [*TRICKY, "\r\n", "\r", "\n", " ", "a\u0301", "e\u0301\u0302", " \u0301", "1\ufe0f\u20e3"]
        ),
        st.text(st.characters(max_codepoint=127), max_size=8),
    ),
    min_size=10,
    max_size=300,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=ascii_heavy, share=st.floats(min_value=0, max_value=1))
def test_the_fast_cut_is_the_plain_cut(text: str, share: float) -> None:
    max_bytes = int(len(text.encode("utf-8", "surrogatepass")) * share)  # mostly a real cut
    assert cut(text, max_bytes) == _reference_cut(text, max_bytes)
