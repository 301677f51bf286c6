"""One reader of the database figures /metrics serves, so a scrape never queries the database.

At 400k messages the grouped counts took half a second, and twenty scrapers at once took seven:
here they run once per interval in a worker thread of the web process, whoever scrapes and however
often, and a scrape reads the last result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from worker.infra.metrics import DatabaseFigures, read_database_figures

log = logging.getLogger(__name__)


class FiguresRefresher:
    """Holds the latest figures; `running()` keeps them fresh for the app's life."""

    def __init__(self, engine: Engine, interval_s: float) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._latest: DatabaseFigures | None = None

    def latest(self) -> DatabaseFigures | None:
        """The last figures read (None until a read has succeeded)."""
        return self._latest

    def refresh(self) -> None:
        """Read the figures once; a failure keeps the previous ones (their age shows it)."""
        try:
            self._latest = read_database_figures(self._engine)
        except Exception as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            log.warning("metrics: cannot read the database figures: %s", reason)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Read once before the app serves (so its first scrape has figures), then every interval."""
        await run_in_threadpool(self.refresh)
        task = asyncio.create_task(self._loop())
        try:
            yield
        finally:
            task.cancel()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await run_in_threadpool(self.refresh)
