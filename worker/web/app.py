"""The ASGI app of the `web` process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis import Redis
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.metrics import OutboxCollector
from worker.runtime import Runtime, get_runtime
from worker.web.hooks import hook_routes


def create_app(runtime: Runtime | None = None) -> Starlette:
    """The web app, bound to a runtime (the process's own by default)."""
    runtime = runtime or get_runtime()
    broker = Redis.from_url(runtime.settings.broker_url, socket_timeout=5)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutboxCollector(runtime, broker))

    async def metrics(_: Request) -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def health(_: Request) -> JSONResponse:
        checks = await run_in_threadpool(_health, runtime, broker)
        return JSONResponse(checks, status_code=200 if all(checks.values()) else 503)

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", health), *hook_routes(runtime)])


def _health(runtime: Runtime, broker: Redis) -> dict[str, bool]:
    checks = {}
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    try:
        checks["broker"] = bool(broker.ping())
    except Exception:
        checks["broker"] = False
    return checks
