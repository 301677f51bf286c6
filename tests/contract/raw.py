"""Raw HTTP the way public Zipwhip clients spoke it (no project code): the three transport styles
of the contract, a login, and a webhook receiver."""

from __future__ import annotations

import json
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlencode

import requests

LINE, PASSWORD = "5556661234", "demo"


@dataclass
class Answer:
    """What any of the styles got back."""

    status_code: int
    text: str
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.text)


Style = Callable[[str, str, dict[str, Any]], Answer]


def get_query(base: str, method: str, params: dict[str, Any]) -> Answer:
    """GET with the pairs in the query string, through urllib (the Zipwhip Python client's way,
    which the command-line clients build on); urllib raises on 4xx/5xx, so its body is read there."""
    url = f"{base}{method}?{urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return Answer(response.status, response.read().decode(), response.headers)
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read().decode(), error.headers)


def _answer(response: requests.Response) -> Answer:
    return Answer(response.status_code, response.text, response.headers)


def post_form(base: str, method: str, params: dict[str, Any]) -> Answer:
    """POST with an `application/x-www-form-urlencoded` body, through requests."""
    return _answer(requests.post(base + method, data=params, timeout=10))


def post_query_empty_body(base: str, method: str, params: dict[str, Any]) -> Answer:
    """POST with the pairs in the query string and an empty body (and a trailing slash)."""
    return _answer(requests.post(base + method + "/", params=params, data=b"", timeout=10))


STYLES = [get_query, post_form, post_query_empty_body]


def login(base: str, username: str = LINE, style: Style = post_form) -> str:
    """A session key through user/login."""
    answer = style(base, "user/login", {"username": username, "password": PASSWORD}).json()
    assert answer["success"] is True and isinstance(answer["response"], str)
    return str(answer["response"])


class _Receiver(BaseHTTPRequestHandler):
    received: queue.Queue[tuple[str, dict[str, Any], str]]
    fail_first: list[int]

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if self.fail_first[0] > 0:
            self.fail_first[0] -= 1
            self.send_response(500)
            self.end_headers()
            return
        self.received.put((self.path, json.loads(raw), raw.decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@dataclass
class Receiver:
    """A webhook receiver: what it got (path, payload, raw body), and how many calls it fails first."""

    url: str
    received: queue.Queue[tuple[str, dict[str, Any], str]]
    fail_first: list[int]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """An HTTP server on a free port that records every POST."""
    received: queue.Queue[tuple[str, dict[str, Any], str]] = queue.Queue()
    fail_first = [0]
    handler = type("Handler", (_Receiver,), {"received": received, "fail_first": fail_first})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}", received, fail_first)
    finally:
        server.shutdown()
