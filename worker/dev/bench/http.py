"""The HTTP enqueue figure of `outbox bench`: what the /v1 API takes beside the Python API.

A producer in another language pays for JSON, HTTP and the web process on top of what `send_message`
costs; this measures that price in the same run: texts one POST each (one keep-alive connection, one
at a time, as `send_message` is measured) and in batches (`POST /v1/messages:batch`, 500 a request).
"""

from __future__ import annotations

import time
from typing import Any

import requests

from worker.api.keys import create_key
from worker.dev.bench.rounds import BULK_CHUNK, LINE, wait_accepted
from worker.infra.runtime import Runtime

SINGLE_REQUESTS = 300
BATCH_TEXTS = 2_000


def http_enqueue(runtime: Runtime, web_url: str, timeout_s: float) -> dict[str, Any]:
    """Requests/s and texts/s through /v1, single and batch; the texts are then followed until the
    provider accepted them all, so the rounds after this one start on an empty queue."""
    key = create_key(runtime.engine, name="bench").key
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    ids: list[int] = []
    started = time.perf_counter()
    for n in range(SINGLE_REQUESTS):
        answer = http.post(f"{web_url}/v1/messages", json=_text(n), timeout=30)
        answer.raise_for_status()
        ids.append(answer.json()["id"])
    single_s = time.perf_counter() - started
    batches = 0
    started = time.perf_counter()
    for first in range(0, BATCH_TEXTS, BULK_CHUNK):
        texts = [_text(SINGLE_REQUESTS + first + n) for n in range(BULK_CHUNK)]
        answer = http.post(f"{web_url}/v1/messages:batch", json={"messages": texts}, timeout=120)
        answer.raise_for_status()
        ids += [message["id"] for message in answer.json()["messages"]]
        batches += 1
    batch_s = time.perf_counter() - started
    wait_accepted(runtime, (min(ids), max(ids)), timeout_s)
    return {
        "single_requests_per_s": round(SINGLE_REQUESTS / single_s, 1),
        "batch_requests_per_s": round(batches / batch_s, 2),
        "batch_texts_per_s": round(BATCH_TEXTS / batch_s, 1),
        "batch_size": BULK_CHUNK,
    }


def _text(n: int) -> dict[str, str]:
    return {
        "line": LINE,
        "to": f"+1503{5550000 + n % 10_000:07d}",
        "body": f"HTTP text {n}: your order shipped.",
    }
