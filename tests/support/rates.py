"""A line's real sending rate, read from the provider's own clock (`dateCreated` in message/list)."""

from __future__ import annotations

from worker.infra.runtime import Runtime


def provider_times(runtime: Runtime, line: str, password: str, body_prefix: str) -> list[float]:
    """When the provider recorded each text of the line whose body starts with the prefix, sorted."""
    key = runtime.client.login(line, password)
    times: list[float] = []
    start = 0
    while True:
        page = runtime.client.list_messages(key, start=start, limit=500)
        times += [m.date_created.timestamp() for m in page.messages if (m.body or "").startswith(body_prefix)]
        if len(page.messages) < 500:
            return sorted(times)
        start += 500


def busiest(times: list[float], window_s: float = 10.0) -> int:
    """The most texts sent within any `window_s` (a line at r/s may send r * window_s, plus one)."""
    return max((sum(1 for t in times if start <= t < start + window_s) for start in times), default=0)
