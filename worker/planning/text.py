"""Cutting text into pieces that fit a byte limit without breaking what a reader sees as one
character (a grapheme cluster: emoji with joiners and skin tones, flags, combining marks).

Written by hand because no library cuts by UTF-8 bytes at grapheme boundaries; the `regex`
module's `\\X` finds the clusters.
"""

from __future__ import annotations

import regex

_CLUSTER = regex.compile(r"\X", regex.DOTALL)
WORD_WINDOW = 0.15  # prefer a cut after whitespace within the last 15% of the limit


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
    used, end, word_end, word_used = 0, 0, 0, 0
    for match in _CLUSTER.finditer(text):
        size = utf8_len(match.group())
        if used + size > max_bytes:
            break
        used += size
        end = match.end()
        if match.group().isspace():
            word_end, word_used = end, used
    if word_end and word_used >= max_bytes * (1 - WORD_WINDOW):
        return word_end
    return end


def is_cluster_boundary(text: str, index: int) -> bool:
    """True when `index` does not fall inside a grapheme cluster of `text`."""
    return index in {0, len(text)} or any(m.end() == index for m in _CLUSTER.finditer(text))
