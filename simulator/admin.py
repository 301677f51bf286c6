"""Admin endpoints (outside the Zipwhip paths) for tests, the demo and the benchmark."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.config import OUTCOMES
from simulator.numbers import e164
from simulator.state import Script, World
from simulator.webhooks import WebhookDispatcher


class Admin:
    """The /_sim/ endpoints of one world."""

    def __init__(self, world: World, webhooks: WebhookDispatcher) -> None:
        self.world = world
        self.webhooks = webhooks

    def routes(self) -> list[Route]:
        """The routes to mount."""
        return [
            Route("/_sim/health", self.health),
            Route("/_sim/counters", self.counters),
            Route("/_sim/reset", self.reset, methods=["POST"]),
            Route("/_sim/forget", self.forget, methods=["POST"]),
            Route("/_sim/faults", self.faults, methods=["GET", "PUT"]),
            Route("/_sim/script", self.script, methods=["POST"]),
            Route("/_sim/inbound", self.inbound, methods=["POST"]),
            Route("/_sim/sessions/invalidate", self.invalidate, methods=["POST"]),
        ]

    async def health(self, _: Request) -> Response:
        """Liveness for tests and the demo."""
        return JSONResponse({"ok": True})

    async def counters(self, request: Request) -> Response:
        """Calls per method, sends per (line, recipient, body, files), duplicates (`?sends=0`: no list)."""
        world = self.world
        detail = request.query_params.get("sends", "1") != "0"
        sends = [
            {"line": line, "to": to, "body": body, "files": list(files), "count": count}
            for (line, to, body, files), count in world.sends.items()
        ]
        return JSONResponse(
            {
                "calls": dict(world.calls),
                "sends": sends if detail else [],
                "duplicates": sum(count - 1 for count in world.sends.values()),
                "messages": len(world.messages),
                "webhooks": {"delivered": self.webhooks.delivered, "failed": self.webhooks.failed},
            }
        )

    async def reset(self, _: Request) -> Response:
        """Forget everything but accounts and sessions."""
        self.world.reset()
        return JSONResponse({"ok": True})

    async def forget(self, _: Request) -> Response:
        """Forget the messages only: ids keep counting up, so none is ever handed out twice."""
        return JSONResponse({"forgotten": self.world.forget_messages()})

    async def faults(self, request: Request) -> Response:
        """Read (GET) or partly change (PUT) the fault settings."""
        if request.method == "PUT":
            try:
                self.world.faults = self.world.faults.updated(await _json(request))
            except (ValueError, TypeError) as error:
                return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(asdict(self.world.faults))

    async def script(self, request: Request) -> Response:
        """Outcomes for the next sends to a recipient, and/or the final status of its messages."""
        data = await _json(request)
        number = e164(str(data.get("to", "")))
        outcomes = list(data.get("outcomes") or [])
        bad = [o for o in outcomes if o not in OUTCOMES and not str(o).startswith("code:")]
        if number is None or bad:
            return JSONResponse(
                {"error": f"need a number in 'to' and known outcomes (bad: {bad})"}, status_code=400
            )
        entry = self.world.scripts.setdefault(number, Script())
        entry.outcomes = deque(outcomes)
        delivery = data.get("delivery")
        entry.delivery = (
            (int(delivery["statusCode"]), int(delivery.get("messageStatus", 0))) if delivery else None
        )
        return JSONResponse({"ok": True})

    async def inbound(self, request: Request) -> Response:
        """A text from a recipient to a line (STOP/START words change the opt-out)."""
        data = await _json(request)
        line, sender = e164(str(data.get("line", ""))), e164(str(data.get("from", "")))
        if line is None or sender is None:
            return JSONResponse({"error": "need 'line' and 'from' numbers"}, status_code=400)
        message, change = self.world.text_in(line, sender, str(data.get("body", "")))
        self.webhooks.text_received(message, change)
        return JSONResponse({"id": str(message.id), "optout": change})

    async def invalidate(self, request: Request) -> Response:
        """End every session of a line."""
        line = e164(str((await _json(request)).get("line", "")))
        if line is None:
            return JSONResponse({"error": "need a 'line' number"}, status_code=400)
        return JSONResponse({"invalidated": self.world.invalidate(line)})


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
