"""The dispatcher's rounds of `outbox bench`: how soon a lone text reaches the provider, how long an
urgent text waits behind a blast, many lines at once, and a killed worker's texts coming back.

Times at the provider are the simulator's own (`dateCreated`, milliseconds), on this machine's clock."""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from sqlmodel import Session

from worker.dev.bench.rounds import provider_calls
from worker.dev.devstack import DevStack
from worker.infra.constants import RELEASE_RUNS_KEY
from worker.infra.runtime import Runtime
from worker.lines import LineLogin, login_lines, set_rates
from worker.producer.enqueue import TextRequest, enqueue, enqueue_many
from worker.store import progress
from worker.store.db import transaction
from worker.store.models import utcnow
from worker.store.record import cancel

PASSWORD = "demo"
LATENCY_LINE = "5559100000"  # an idle line, a text at a time
URGENT_LINE = "5559100001"  # a blast, then an urgent text
FIRST_MANY_LINE = 5559200000  # `--lines N` take the numbers from here
EXTRA_LINES = 2  # the two above


def simulator_lines(many: int) -> list[str]:
    """The simulator's `--line-range` arguments for the bench's own lines."""
    ranges = ["--line-range", f"{LATENCY_LINE}:{EXTRA_LINES}"]
    return ranges + (["--line-range", f"{FIRST_MANY_LINE}:{many}"] if many else [])


def log_in(runtime: Runtime, phones: list[str]) -> None:
    """Log the bench's lines in (concurrently); any failure stops the bench."""
    failed = [r for r in login_lines(runtime, [LineLogin(p, None, PASSWORD) for p in phones], 32) if r.error]
    if failed:
        raise RuntimeError(f"could not log {len(failed)} bench lines in: {failed[0].error}")


@dataclass
class _Provider:
    """The simulator seen through a line's session: when did a text with this body arrive?"""

    base_url: str
    session: str

    @classmethod
    def of(cls, base_url: str, line: str) -> _Provider:
        answer = requests.post(
            base_url + "user/login", data={"username": line, "password": PASSWORD}, timeout=10
        )
        return cls(base_url, str(answer.json()["response"]))

    def arrived(self, body: str, timeout_s: float = 120) -> float:
        """The provider's time (epoch seconds) of the text with this body, once it is there."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            page = requests.post(
                self.base_url + "message/list", data={"session": self.session, "limit": 20}, timeout=10
            ).json()["response"]
            found = [m for m in page if m.get("body") == body]
            if found:
                return datetime.fromisoformat(found[0]["dateCreated"]).timestamp()
            time.sleep(0.005)
        raise TimeoutError(f"the text {body!r} never reached the provider")


def enqueue_to_provider(runtime: Runtime, base_url: str, samples: int = 30) -> dict[str, float]:
    """`send_message` returns -> the request is at the provider, for lone texts on an idle line. The
    simulator answers at once meanwhile: its `dateCreated` is then when the request arrived."""
    provider = _Provider.of(base_url, LATENCY_LINE)
    latency = requests.get(base_url + "_sim/faults", timeout=10).json()["latency_ms"]
    requests.put(base_url + "_sim/faults", json={"latency_ms": 0}, timeout=10).raise_for_status()
    waits = []
    try:
        for n in range(samples):
            body = f"latency sample {n} {time.time():.6f}"
            enqueue(runtime, LATENCY_LINE, f"+1303555{n:04d}", body)
            returned = time.time()
            waits.append(provider.arrived(body) - returned)
            time.sleep(0.2)  # idle again before the next one
    finally:
        requests.put(base_url + "_sim/faults", json={"latency_ms": latency}, timeout=10).raise_for_status()
    return _percentiles(waits)


def urgent_behind_blast(runtime: Runtime, base_url: str, rate: float, blast: int) -> float:
    """Seconds from enqueue to the provider for an urgent text sent 2 s after a blast on its line."""
    set_rates(runtime, [URGENT_LINE], rate)
    provider = _Provider.of(base_url, URGENT_LINE)
    ids: list[int] = []
    for start in range(0, blast, 5000):
        texts = [
            TextRequest(URGENT_LINE, f"+1404{5550000 + n:07d}", f"blast {n}")
            for n in range(start, min(blast, start + 5000))
        ]
        ids += enqueue_many(runtime, texts)
    time.sleep(2)
    body = f"urgent {time.time():.6f}"
    enqueue(runtime, URGENT_LINE, "+15035550000", body, priority="high")
    returned = time.time()
    waited = provider.arrived(body) - returned
    with transaction(runtime.engine) as session:  # the rest of the blast is not the bench's business
        cancel(session, ids, utcnow())
    return round(waited, 3)


def many_lines(runtime: Runtime, base_url: str, lines: int, per_line: int = 5) -> dict[str, Any]:
    """`lines` lines x `per_line` texts at 1/s each, enqueued at once: when the last one is accepted,
    provider calls per delivered text, and what each release run cost meanwhile."""
    phones = [str(FIRST_MANY_LINE + n) for n in range(lines)]
    log_in(runtime, phones)
    set_rates(runtime, phones, 1.0)
    runtime.redis.delete(RELEASE_RUNS_KEY)
    calls_before = provider_calls(base_url)
    started_at = utcnow()
    texts = [
        TextRequest(p, f"+1971{5550000 + k:07d}", f"line {p} text {k}")
        for p in phones
        for k in range(per_line)
    ]
    ids = [
        i for start in range(0, len(texts), 5000) for i in enqueue_many(runtime, texts[start : start + 5000])
    ]
    # The bench's own database: nobody else writes between its ids, so the waits scan one range. They
    # look twice a second (a count over thousands of ids twenty times a second took most of a core
    # from the workers it measured); the time itself comes from the recorded acceptances.
    among = progress.Span(ids[0], ids[-1]) if ids[-1] - ids[0] + 1 == len(ids) else ids
    _wait(lambda: _not_accepted(runtime, among) == 0, 900, every_s=0.5)
    with Session(runtime.engine) as session:
        last = progress.last_accepted_at(session, among)
    accepted_s = (last - started_at).total_seconds() if last else float("nan")
    runs = [json.loads(raw) for raw in runtime.redis.lrange(RELEASE_RUNS_KEY, 0, -1)]
    _wait(lambda: _not_final(runtime, among) == 0, 900, every_s=0.5)
    delivered = _delivered(runtime, among)
    durations = sorted(r["s"] for r in runs if r.get("sends"))
    return {
        "lines": lines,
        "texts": len(ids),
        "last_accepted_s": round(accepted_s, 2),
        "calls_per_delivered": round((provider_calls(base_url) - calls_before) / max(1, delivered), 3),
        "release_run_p50_s": round(statistics.median(durations), 4) if durations else None,
        "release_run_max_s": round(durations[-1], 4) if durations else None,
    }


def recovery(
    runtime: Runtime, stack: DevStack, base_url: str, start_worker: Any, count: int = 400
) -> dict[str, Any]:
    """A worker SIGKILLed while texts are in flight, a fresh one started: seconds until every text is
    final, and none lost or sent twice (the simulator's own count)."""
    body = "recovery {}"
    texts = [TextRequest(LATENCY_LINE, f"+1503{5550000 + n:07d}", body.format(n)) for n in range(count)]
    duplicates_before = _duplicates(base_url)
    ids = enqueue_many(runtime, texts)
    _wait(lambda: _sent(runtime, ids) >= count // 4, 120)
    at_provider = _sent(runtime, ids)
    victim = stack.processes.pop("worker1")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    killed = time.monotonic()
    start_worker("worker1b")
    _wait(lambda: _not_final(runtime, ids) == 0, 600)
    took = time.monotonic() - killed
    duplicates = _duplicates(base_url) - duplicates_before
    return {
        "texts": count,
        "sent_before_kill": at_provider,
        "all_final_s": round(took, 1),
        "duplicates": duplicates,
    }


def _duplicates(base_url: str) -> int:
    """Texts the simulator got more than once, so far."""
    return int(requests.get(base_url + "_sim/counters?sends=0", timeout=10).json()["duplicates"])


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 4)

    return {"p50_s": at(0.5), "p95_s": at(0.95), "p99_s": at(0.99)}


def _wait(done: Any, timeout_s: float, every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the bench round did not finish in time")
        time.sleep(every_s)


def _not_accepted(runtime: Runtime, ids: progress.Ids) -> int:
    with Session(runtime.engine) as session:
        return progress.parts_not_accepted(session, ids)


def _sent(runtime: Runtime, ids: list[int]) -> int:
    with Session(runtime.engine) as session:
        return progress.parts_sent(session, ids)


def _not_final(runtime: Runtime, ids: progress.Ids) -> int:
    with Session(runtime.engine) as session:
        return progress.messages_not_final(session, ids)


def _delivered(runtime: Runtime, ids: progress.Ids) -> int:
    with Session(runtime.engine) as session:
        return progress.messages_delivered(session, ids)
