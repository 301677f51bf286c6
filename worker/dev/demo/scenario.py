"""The demo's realistic mix: what to send, what the simulator will do to it, what must come out."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from worker.planning import FileInput

LOREM = (
    "Thanks for your order. Your package left our warehouse this morning and is on its way. "
    "You can follow it with the link in your account. Reply STOP to opt out. "
)


@dataclass(frozen=True)
class DemoMessage:
    """One message of the demo, with what the simulator is told and what must come out of it."""

    kind: str  # sms | long text | images | retried | refused | carrier failure | ambiguous | opted out
    to: str
    body: str
    files: tuple[FileInput, ...] = ()
    expected: str = "delivered"
    script: dict[str, Any] | None = None
    texted_stop: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour, written by hand so the demo needs no imaging library."""
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class _Numbers:
    """Recipients: a shared pool for ordinary texts (so some get several, in order), fresh ones for
    scripted cases (a script belongs to a recipient)."""

    def __init__(self, rng: random.Random, pool_size: int) -> None:
        self._rng = rng
        self._fresh: Iterator[int] = iter(range(5000, 9999))
        self._pool = [self.fresh() for _ in range(pool_size)]

    def fresh(self) -> str:
        return f"+1206555{next(self._fresh):04d}"

    def any(self) -> str:
        return self._rng.choice(self._pool)


def build_mix(total: int, seed: int = 7) -> list[DemoMessage]:
    """About `total` messages: mostly short SMS, some long texts and pictures, and the hard cases."""
    rng = random.Random(seed)
    numbers = _Numbers(rng, max(4, total // 3))
    special = _special_cases(numbers, max(1, total // 30))
    ordinary = [_ordinary(rng, numbers, n) for n in range(max(0, total - len(special)))]
    mix = ordinary + special
    rng.shuffle(mix)
    return mix


def _ordinary(rng: random.Random, numbers: _Numbers, ref: int) -> DemoMessage:
    """A message a business really sends; each carries its own reference, as real ones do, so a
    text the provider sees twice is a duplicate and not two alike."""
    roll = rng.random()
    if roll < 0.12:
        body = f"Order #{ref}: " + (LOREM * rng.randint(6, 20))[: rng.randint(700, 2500)]
        return DemoMessage("long text", numbers.any(), body)
    if roll < 0.26:
        count = rng.choice([1, 1, 2, 3])
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        files = tuple(FileInput(f"photo{n + 1}.png", png(96, 64, colour)) for n in range(count))
        return DemoMessage("images", numbers.any(), f"Photos for claim #{ref}", files)
    return DemoMessage("sms", numbers.any(), f"Appointment #{ref} is confirmed for {rng.randint(1, 12)} pm.")


def _special_cases(numbers: _Numbers, each: int) -> list[DemoMessage]:
    cases: list[DemoMessage] = []
    for _ in range(each):
        cases.append(
            DemoMessage("retried", numbers.fresh(), "Try me twice", script={"outcomes": ["code:-855", "ok"]})
        )
        cases.append(
            DemoMessage(
                "refused", numbers.fresh(), "Bad input", expected="failed", script={"outcomes": ["code:-703"]}
            )
        )
        cases.append(
            DemoMessage(
                "carrier failure",
                numbers.fresh(),
                "Nowhere to go",
                expected="failed",
                script={"delivery": {"statusCode": 5, "messageStatus": 1106}},
            )
        )
    stop = numbers.fresh()
    cases.append(DemoMessage("opted out", stop, "Hello?", expected="rejected", texted_stop=True))
    cases.append(DemoMessage("opted out", stop, "Hello again?", expected="rejected", texted_stop=True))
    cases.append(DemoMessage("ambiguous", numbers.fresh(), "Did it go?", script={"outcomes": ["slow", "ok"]}))
    return cases
