"""The ASGI app: Zipwhip methods at base URL + method path, admin endpoints under /_sim/."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.admin import Admin
from simulator.api import ADMIN_ONLY, HANDLERS
from simulator.config import SimConfig
from simulator.context import Call
from simulator.state import World
from simulator.webhooks import WebhookDispatcher
from simulator.wire import Params, envelope, failure, read_params


def create_app(config: SimConfig) -> Starlette:
    """The simulator as an ASGI app (its state lives in `app.state.world`)."""
    world = World(config)
    webhooks = WebhookDispatcher(world, config.webhook_retries)

    async def zipwhip(request: Request) -> Response:
        method = request.path_params["method"].strip("/")
        if method != "user/login" and method not in HANDLERS:
            return failure(f"Unknown method {method}", status=404)
        world.calls[method] += 1
        if world.faults.latency_ms > 0:
            await asyncio.sleep(world.faults.latency_ms / 1000)
        params = await read_params(request)
        if method == "user/login":
            return _login(world, params)
        login = world.sessions.get(params.get("session") or "")
        if login is None:
            return failure("Invalid session", status=world.faults.invalid_session_status)
        if login.role == "operator" and method in ADMIN_ONLY:
            return failure("Access denied: an Operator may only send and receive messages")
        return await HANDLERS[method](Call(request, params, world, webhooks, login))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(webhooks.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = Starlette(
        routes=[*Admin(world, webhooks).routes(), Route("/{method:path}", zipwhip, methods=["GET", "POST"])],
        lifespan=lifespan,
    )
    app.state.world = world
    return app


def _login(world: World, params: Params) -> Response:
    username = params.get("username", "mobileNumber")
    password = params.get("password")
    if not username:
        return failure("Required String parameter 'username' is not present")
    if password is None:
        return failure("Required String parameter 'password' is not present")
    session = world.login(username, password)
    if session is None:
        return failure("Invalid username or password")
    return envelope(session)
