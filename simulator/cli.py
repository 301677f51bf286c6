"""`python -m simulator` / `outbox simulator`: run the Zipwhip simulator."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from simulator.app import create_app
from simulator.config import DEMO_ACCOUNTS, Account, Faults, SimConfig


def _account(text: str) -> Account:
    """`USERNAME:PASSWORD[:ROLE]`. A username never holds a colon, so it ends at the first one;
    with three or more fields the last is the role (a password holding a colon needs one)."""
    username, sep, rest = text.partition(":")
    if not sep or not username:
        raise argparse.ArgumentTypeError(
            "use USERNAME:PASSWORD[:ROLE], e.g. 5556661234:secret or scott@5556661234:pw:admin"
        )
    password, sep, role = rest.rpartition(":")
    if not sep:
        password, role = rest, ""
    try:
        return Account(username, password, role.lower())
    except ValueError as error:  # the text names the username and role, never the password
        raise argparse.ArgumentTypeError(f"--account {username}: {error}") from None


def _line_range(text: str) -> tuple[int, int]:
    """`FIRST:COUNT`: COUNT lines numbered from FIRST (10 digits), each its own System login."""
    first, sep, count = text.partition(":")
    if not sep or not first.isdigit() or len(first) != 10 or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError("use FIRST:COUNT, e.g. 5558000000:1000")
    return int(first), int(count)


def range_accounts(first: int, count: int, password: str = "demo") -> tuple[Account, ...]:
    """System logins for `count` lines numbered from `first` (all with the same password)."""
    return tuple(Account(str(first + n), password) for n in range(count))


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="outbox simulator", description="A local stand-in for the Zipwhip REST API."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8900)
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every Zipwhip call")
    p.add_argument("--seed", type=int, default=None, help="make every random choice repeatable")
    p.add_argument(
        "--account",
        type=_account,
        action="append",
        default=[],
        help="USERNAME:PASSWORD[:system|admin|operator] (repeatable)",
    )
    p.add_argument(
        "--line-range",
        type=_line_range,
        action="append",
        default=[],
        help="FIRST:COUNT: COUNT more lines numbered from FIRST, password demo (for many-line loads)",
    )
    p.add_argument("--delivery-ms", type=float, default=2000.0, help="time from send to final status")
    p.add_argument("--fail-share", type=float, default=0.0, help="share of deliveries ending statusCode 5")
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of sends given an injected fault")
    p.add_argument("--rate-limit-per-line", type=float, default=0.0, help="sends/s per line before HTTP 429")
    p.add_argument("--invalid-session-status", type=int, choices=(200, 401, 403), default=401)
    p.add_argument("--slow-answer-s", type=float, default=15.0, help="how long a 'slow' answer takes")
    p.add_argument("--webhook-retries", type=int, default=3)
    p.add_argument("--quiet", action="store_true")
    return p


def config_from(args: argparse.Namespace) -> SimConfig:
    """The simulator's configuration from parsed arguments."""
    faults = Faults(
        latency_ms=args.latency_ms,
        delivery_ms=args.delivery_ms,
        fail_share=args.fail_share,
        fault_rate=args.fault_rate,
        rate_limit_per_line=args.rate_limit_per_line,
        invalid_session_status=args.invalid_session_status,
        slow_answer_s=args.slow_answer_s,
    )
    return SimConfig(
        host=args.host,
        port=args.port,
        seed=args.seed,
        accounts=(tuple(args.account) or DEMO_ACCOUNTS)
        + tuple(a for first, count in args.line_range for a in range_accounts(first, count)),
        faults=faults,
        webhook_retries=args.webhook_retries,
        quiet=args.quiet,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and serve until interrupted."""
    args = parser().parse_args(argv)
    config = config_from(args)
    if not args.account and not config.quiet:
        print("demo accounts (username / password):")
        for account in DEMO_ACCOUNTS:
            print(f"  {account.username} / {account.password}")
    print(f"simulator listening on http://{config.host}:{config.port}/", flush=True)
    sys.stdout.flush()
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
        timeout_keep_alive=75,
    )
