"""The ASGI app of the `web` process."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.infra.brokers import BrokerView, broker_view
from worker.infra.metrics import OutboxCollector
from worker.infra.runtime import Runtime, get_runtime
from worker.store.db import answers as database_answers
from worker.web.refresher import FiguresRefresher
from worker.web.v1.routes import api_routes
from worker.web.webhooks import hook_routes


def create_app(runtime: Runtime | None = None) -> Starlette:
    """The web app, bound to a runtime (the process's own by default)."""
    runtime = runtime or get_runtime()
    settings = runtime.settings
    broker = broker_view(settings.broker_url)
    refresher = FiguresRefresher(runtime.engine, settings.metrics_refresh_s)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutboxCollector(runtime.redis, broker, refresher.latest, time.monotonic()))
    token = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None

    async def metrics(request: Request) -> Response:
        if token is not None and not _bearer_matches(request, token):
            return Response("a bearer token is needed\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def health(_: Request) -> JSONResponse:
        checks = await run_in_threadpool(_health, runtime, broker)
        return JSONResponse(checks, status_code=200 if all(checks.values()) else 503)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with refresher.running():
            yield

    routes = [
        Route("/metrics", metrics),
        Route("/healthz", health),
        *hook_routes(runtime),
        *api_routes(runtime),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _bearer_matches(request: Request, token: bytes) -> bool:
    """Constant-time check of `Authorization: Bearer <token>` (as bytes: any characters may come)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "replace"), token)


def _health(runtime: Runtime, broker: BrokerView) -> dict[str, bool]:
    checks = {"database": database_answers(runtime.engine)}
    try:
        checks["broker"] = bool(broker.ping())
    except Exception:
        checks["broker"] = False
    return checks
