"""How many message/send calls per second a running simulator serves to keep-alive clients.

`python -m simulator.loadcheck --url http://127.0.0.1:8900/ [--seconds 5] [--threads 8]`
(the benchmark, `outbox bench`, prints the same figure).

The load is written by hand on raw sockets (HTTP/1.1 keep-alive, one connection per thread): on a
2-core machine a full HTTP library on the measuring side costs more CPU than the server it measures.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from typing import BinaryIO
from urllib.parse import urlencode, urlsplit

import requests


def _request(host: str, path: str, form: dict[str, str]) -> bytes:
    body = urlencode(form).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _read_response(stream: BinaryIO) -> int:
    status, length = int(stream.readline().split()[1]), 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    stream.read(length)
    return status


def measure_send_rate(base_url: str, session: str, seconds: float = 5.0, threads: int = 8) -> float:
    """Accepted sends per second over `seconds`, from `threads` keep-alive connections."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    path = url.path.rstrip("/") + "/message/send"
    counts = [0] * threads
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        request = _request(
            host, path, {"session": session, "contacts": f"+1206555{index:04d}", "body": "load"}
        )
        with socket.create_connection((host, port)) as connection, connection.makefile("rb") as stream:
            while time.monotonic() < deadline:
                connection.sendall(request)
                if _read_response(stream) != 200:
                    raise RuntimeError("the simulator refused a send during the load check")
                counts[index] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def login(base_url: str, username: str = "5556661234", password: str = "demo") -> str:
    """A session key from the simulator."""
    answer = requests.post(
        base_url + "user/login", data={"username": username, "password": password}, timeout=10
    )
    return str(answer.json()["response"])


def main() -> None:
    """Print the rate of a running simulator."""
    parser = argparse.ArgumentParser(description="message/send calls per second of a running simulator")
    parser.add_argument("--url", default="http://127.0.0.1:8900/")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--username", default="5556661234")
    parser.add_argument("--password", default="demo")
    args = parser.parse_args()
    rate = measure_send_rate(
        args.url, login(args.url, args.username, args.password), args.seconds, args.threads
    )
    print(f"simulator: {rate:,.0f} message/send calls per second ({args.threads} keep-alive clients)")


if __name__ == "__main__":
    main()
