"""Cutting text into pieces that fit a byte limit without breaking what a reader sees as one
character (a grapheme cluster: emoji with joiners and skin tones, flags, combining marks).

Written by hand because no library cuts by UTF-8 bytes at grapheme boundaries; the `regex`
module's `\\X` finds the clusters.
"""

from __future__ import annotations

import re

import regex

_CLUSTER = regex.compile(r"\X", regex.DOTALL)
WORD_WINDOW = 0.15  # prefer a cut after whitespace within the last 15% of the limit
# Between two ASCII characters (but CR LF) there is always a cluster boundary: no ASCII character
# extends, joins or prepends to another. The walk over clusters starts at such a place near the
# part of the text that matters, not at its start (600,000 clusters walked per MMS took seconds).
_SAFE_START = re.compile(r"(?!\r\n)[\x00-\x7f](?=[\x00-\x7f])")
SAFE_SEARCH_CHARS = 256  # how far back such a place is looked for before walking from the start


def utf8_len(text: str) -> int:
    """Bytes of the text in UTF-8."""
    return len(text.encode("utf-8"))


def cut(text: str, max_bytes: int) -> int:
    """Where to cut `text` so the head has at most `max_bytes` UTF-8 bytes.

    Returns an index into `text` on a grapheme boundary (0 if not even the first cluster fits),
    after a whitespace character when one lies close enough to the limit.
    """
    if utf8_len(text) <= max_bytes:
        return len(text)
    window_start = max_bytes * (1 - WORD_WINDOW)
    # Strictly before the window: whitespace ending where the walk starts could not count anyway.
    start = _safe_start(text, _chars_within(text, max(0, int(window_start) - 1)))
    used, end, word_end, word_used = utf8_len(text[:start]), start, 0, 0
    for match in _CLUSTER.finditer(text, start):
        size = utf8_len(match.group())
        if used + size > max_bytes:
            break
        used += size
        end = match.end()
        if match.group().isspace():
            word_end, word_used = end, used
    if word_end and word_used >= window_start:
        return word_end
    return end


def _chars_within(text: str, max_bytes: int) -> int:
    """How many whole characters of `text` fit in `max_bytes` UTF-8 bytes (at C speed)."""
    return len(text[:max_bytes].encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))


def _safe_start(text: str, index: int) -> int:
    """A cluster boundary at or before `index`, found near it (or 0)."""
    places = list(_SAFE_START.finditer(text, max(0, index - SAFE_SEARCH_CHARS), index))
    return places[-1].start() + 1 if places else 0
