"""The ASGI app: Zipwhip methods at base URL + method path, admin endpoints under /_sim/."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
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

ALLOWED_HTTP_METHODS = ("GET", "POST")
# Routed to the handler so that the ones not allowed get a 405 in the envelope, not Starlette's text.
ANY_HTTP_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_app(config: SimConfig) -> Starlette:
    """The simulator as an ASGI app (its state lives in `app.state.world`)."""
    world = World(config)
    webhooks = WebhookDispatcher(world, config.webhook_retries)

    async def zipwhip(request: Request) -> Response:
        if request.method not in ALLOWED_HTTP_METHODS:
            return _not_allowed(request.method)
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
        routes=[*Admin(world, webhooks).routes(), Route("/{method:path}", zipwhip, methods=ANY_HTTP_METHOD)],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.world = world
    return app


def _not_allowed(http_method: str) -> Response:
    return failure(
        f"Request method '{http_method}' not supported",
        status=405,
        headers={"Allow": ", ".join(ALLOWED_HTTP_METHODS)},
    )


async def _http_error(_: Request, error: Exception) -> Response:
    """Errors Starlette raises itself (a 405 on an admin path, a 400 for a broken multipart body)
    in the JSON envelope like every other answer."""
    assert isinstance(error, HTTPException)
    return failure(error.detail, status=error.status_code, headers=dict(error.headers or {}))


async def _server_error(_: Request, error: Exception) -> Response:
    """A bug in the simulator still answers in the envelope (the traceback goes to the log)."""
    return failure("Internal Server Error", status=500)


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
