"""What a handler gets: the call's parameters, who is logged in, the world and the webhooks."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from simulator.state import Login, World
from simulator.webhooks import WebhookDispatcher
from simulator.wire import Params


@dataclass
class Call:
    """One Zipwhip API call."""

    request: Request
    params: Params
    world: World
    webhooks: WebhookDispatcher
    login: Login
