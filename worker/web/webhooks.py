"""The webhook endpoint of the web process: checks first (source, secret), then records and returns.

Anything that fails a check is refused before the database is touched: a source outside the
allow-list gets 403, a wrong secret (or webhooks switched off) 404, a body over the cap 413 (read no
further than the cap), a malformed body 400 naming the problem.
"""

from __future__ import annotations

import ipaddress
import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from worker.inbound.webhooks import EVENTS, BadPayload, handle_event, token_matches
from worker.infra.runtime import Runtime
from worker.web.body import BadJson, BodyTooLarge, loads_strict, read_capped

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024  # a message object is a few hundred bytes


def hook_routes(runtime: Runtime) -> list[Route]:
    """The routes the provider calls."""
    settings = runtime.settings
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.webhook_allowed_sources]

    def source_allowed(request: Request) -> bool:
        if not networks:
            return True
        host = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in networks)

    async def receive(request: Request) -> JSONResponse:
        if not source_allowed(request):
            return JSONResponse({"error": "forbidden"}, status_code=403)
        params = request.path_params
        line = "+" + params["line"]
        kind = (params["type"], params["event"])
        secret = settings.webhook_secret_key
        if not secret or kind not in EVENTS or not token_matches(secret, line, params["token"]):
            return JSONResponse({"error": "not found"}, status_code=404)
        try:
            payload = loads_strict(await read_capped(request, MAX_BODY_BYTES))
            handled = await run_in_threadpool(handle_event, runtime, line, *kind, payload)
        except BodyTooLarge as error:
            return JSONResponse({"error": str(error)}, status_code=413)
        except (BadJson, BadPayload, ValueError) as error:
            return JSONResponse({"error": f"malformed payload: {error}"}, status_code=400)
        except LookupError:
            return JSONResponse({"error": "not found"}, status_code=404)
        log.info("webhook %s/%s: %s", *kind, handled.summary)
        return JSONResponse({"ok": True})

    return [Route("/hooks/{line:str}/{token:str}/{type:str}/{event:str}", receive, methods=["POST"])]
