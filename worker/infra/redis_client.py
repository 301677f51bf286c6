"""Every Redis client of the project is made here, from a URL: one server (`redis://`, `rediss://`,
`unix://`), or Sentinels watching a primary that fails over.

A Sentinel URL lists the Sentinels, `;` between them, and names the primary (Sentinel's "master")
once; the primary's password, the database and the query may sit on any one of them:

    sentinel://:PASSWORD@10.0.0.1:26379;sentinel://10.0.0.2:26379;sentinel://10.0.0.3:26379/0?master=outbox

`master` is required; `sentinel_password=...` is given to the Sentinels themselves (their own
`requirepass`), the userinfo password to the primary. The same URL serves `OUTBOX_REDIS_URL` and
`OUTBOX_BROKER_URL`: for Celery it becomes kombu's form (`kombu_broker`), every Sentinel a
`sentinel://` alternate and the primary's name the `master_name` transport option.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

from redis import Redis
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "sentinel"
SENTINEL_PORT = 26379
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0  # a host cut off drops packets: a connect must not wait for the OS's two minutes


@dataclass(frozen=True)
class SentinelUrl:
    """What a Sentinel URL says: where the Sentinels are and which primary (and database) to use."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def is_sentinel_url(url: str) -> bool:
    """Whether the URL names Sentinels rather than one server."""
    return url.strip().lower().startswith(SENTINEL_SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a Sentinel URL; ValueError naming what is wrong."""
    hosts: list[tuple[str, int]] = []
    found: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in url.split(";"))):
        split = urlsplit(part)
        if split.scheme.lower() != SENTINEL_SCHEME or not split.hostname:
            raise ValueError(f"{part!r}: each Sentinel is sentinel://host:port")
        hosts.append((split.hostname, split.port or SENTINEL_PORT))
        given = {
            "username": unquote(split.username) if split.username else "",
            "password": unquote(split.password) if split.password else "",
            "db": split.path.strip("/"),
            **{key: values[-1] for key, values in parse_qs(split.query).items()},
        }
        for key, value in given.items():
            if value and found.setdefault(key, value) != value:
                raise ValueError(f"the Sentinel URL gives {key} twice, differently")
    unknown = set(found) - {"username", "password", "db", "master", "sentinel_password"}
    if unknown:
        raise ValueError(f"the Sentinel URL has unknown parameters: {', '.join(sorted(unknown))}")
    if not found.get("master"):
        raise ValueError("the Sentinel URL must name the primary: ...?master=NAME")
    if not found.get("db", "0").isdigit():
        raise ValueError(f"the Sentinel URL's database must be a number, not {found['db']!r}")
    return SentinelUrl(
        sentinels=tuple(hosts),
        master=found["master"],
        db=int(found.get("db", "0")),
        username=found.get("username"),
        password=found.get("password"),
        sentinel_password=found.get("sentinel_password"),
    )


def redis_client(url: str, socket_timeout_s: float = SOCKET_TIMEOUT_S) -> Redis:
    """A client for the URL. Through Sentinels, it finds the primary on each new connection: a
    command that meets a dead or demoted primary fails with a ConnectionError, and the next one
    (redis-py retries a failed command three times, with backoff) goes to whoever is primary then."""
    options = {
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": min(CONNECT_TIMEOUT_S, socket_timeout_s),
        "health_check_interval": 30,
    }
    if not is_sentinel_url(url):
        return Redis.from_url(url, **options)  # type: ignore[arg-type]
    parsed = parse_sentinel_url(url)
    sentinel_options = {
        "socket_timeout": options["socket_timeout"],
        "socket_connect_timeout": options["socket_connect_timeout"],
    }
    if parsed.sentinel_password:
        sentinel_options["password"] = parsed.sentinel_password  # type: ignore[assignment]
    sentinel = Sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_options)
    return sentinel.master_for(
        parsed.master, db=parsed.db, username=parsed.username, password=parsed.password, **options
    )


def kombu_broker(url: str) -> tuple[str, dict[str, object]]:
    """The broker URL as kombu takes it, and the transport options it needs besides (for Sentinels:
    every Sentinel an alternate carrying the password and database, the primary's name an option)."""
    if not is_sentinel_url(url):
        return url, {}
    parsed = parse_sentinel_url(url)
    credentials = ""
    if parsed.password:
        credentials = f"{quote(parsed.username or '', safe='')}:{quote(parsed.password, safe='')}@"
    alternates = ";".join(
        f"{SENTINEL_SCHEME}://{credentials}{host}:{port}/{parsed.db}" for host, port in parsed.sentinels
    )
    options: dict[str, object] = {"master_name": parsed.master}
    if parsed.sentinel_password:
        options["sentinel_kwargs"] = {"password": parsed.sentinel_password}
    return alternates, options


def await_replica(redis: Redis, timeout_s: float = 1.0) -> bool:
    """Wait (at most `timeout_s`) until a replica has every write of this connection so far, when the
    server has replicas: a write that matters after a failover (a worker's tombstone) survives it.
    True when one confirmed, or there is no replica to wait for."""
    if not redis.info("replication").get("connected_slaves"):
        return True
    return bool(redis.wait(1, int(timeout_s * 1000)))
