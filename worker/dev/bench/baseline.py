"""The yardstick: the same sends as the pipeline, from a plain thread pool of `requests` sessions
straight to the simulator (no queue, no database, no tracking)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests


def baseline_rate(base_url: str, session_key: str, count: int, threads: int) -> float:
    """Accepted message/send calls per second for `count` sends over `threads` keep-alive sessions."""
    local = threading.local()
    url = base_url.rstrip("/") + "/message/send"

    def send(n: int) -> None:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = requests.Session()
        form = {"session": session_key, "contacts": f"+1206{n % 10_000_000:07d}", "body": f"baseline {n}"}
        answer = http.post(url, data=form, timeout=30)
        if not answer.json().get("success"):
            raise RuntimeError(f"the simulator refused a baseline send: {answer.text[:200]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(send, n) for n in range(count)]:
            future.result()
    return count / (time.perf_counter() - started)
