"""Real webhook deliveries: HTTP POSTs of the flat message object to the registered URLs, retried
with backoff when the receiver fails (the live service's policy is unknown; retries are a setting)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from simulator.state import Hook, Message, World
from simulator.views import transition_times, webhook_payload

log = logging.getLogger("simulator.webhooks")
CONCURRENT_DELIVERIES = 32


@dataclass(order=True)
class _Due:
    at: float
    order: int
    hook_id: int = field(compare=False)
    payload: Any = field(compare=False)  # a dict, or a (message, moment) to render when due
    attempt: int = field(compare=False, default=0)


class WebhookDispatcher:
    """Schedules and delivers webhook calls from the simulator's event loop."""

    def __init__(self, world: World, retries: int) -> None:
        self._world = world
        self._retries = retries
        self._queue: list[_Due] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(CONCURRENT_DELIVERIES)
        self._client: httpx.AsyncClient | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed = 0

    def _hooks(self, line: str, type_: str, event: str) -> list[Hook]:
        return [
            h for h in self._world.hooks.values() if h.line == line and h.type == type_ and h.event == event
        ]

    def _schedule(self, at: float, hook: Hook, payload: Any, attempt: int = 0) -> None:
        heapq.heappush(self._queue, _Due(at, next(self._order), hook.id, payload, attempt))
        self._wake.set()

    def message_sent(self, message: Message) -> None:
        """A `send` event now, and a `progress` event at each statusCode change."""
        for hook in self._hooks(message.line, "message", "send"):
            self._schedule(message.created, hook, (message, message.created))
        for moment in transition_times(message):
            for hook in self._hooks(message.line, "message", "progress"):
                self._schedule(moment, hook, (message, moment + 1e-6))

    def text_received(self, message: Message, change: str | None) -> None:
        """A `receive` event, and an optout `change` for STOP/START words."""
        for hook in self._hooks(message.line, "message", "receive"):
            self._schedule(time.time(), hook, (message, time.time()))
        if change:
            for hook in self._hooks(message.line, "optout", "change"):
                self._schedule(time.time(), hook, (message, time.time()))

    def message_changed(self, message: Message, event: str) -> None:
        """A `read` or `delete` event now (message/read, message/delete and the conversation ones)."""
        for hook in self._hooks(message.line, "message", event):
            self._schedule(time.time(), hook, (message, time.time()))

    async def run(self) -> None:
        """Deliver due calls until cancelled."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            self._client = client
            while True:
                delay = self._queue[0].at - time.time() if self._queue else 3600.0
                if delay > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=delay)
                    continue
                due = heapq.heappop(self._queue)
                await self._slots.acquire()
                task = asyncio.create_task(self._deliver(due))
                self._running.add(task)  # keep a reference until it is done
                task.add_done_callback(self._running.discard)

    async def _deliver(self, due: _Due) -> None:
        try:
            hook = self._world.hooks.get(due.hook_id)
            if hook is None or self._client is None:
                return
            if isinstance(due.payload, tuple):
                message, moment = due.payload
                due.payload = webhook_payload(message, moment)
            try:
                response = await self._client.request(hook.method, hook.url, json=due.payload)
                ok = 200 <= response.status_code < 300
            except httpx.HTTPError:
                ok = False
            if ok:
                self.delivered += 1
            elif due.attempt < self._retries:
                self._schedule(time.time() + 0.5 * 2**due.attempt, hook, due.payload, due.attempt + 1)
            else:
                self.failed += 1
                log.warning("webhook %s gave up after %d attempts", hook.url, due.attempt + 1)
        finally:
            self._slots.release()
