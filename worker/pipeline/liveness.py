"""Which workers are alive, so that a dead worker's texts come back in seconds, not minutes.

Each worker process keeps a short-lived key in Redis (`alive:<name>`), refreshed by a thread of its
own: a long provider call or a busy task thread never holds it up, so a worker that is only slow
stays alive. A worker notes the tasks it holds (`held:<kind>:<name>`: the message ids of send and
reconcile tasks, the line ids of polls), from the moment it receives one (a task waiting for its
rate slot included) until the task ends, and every claim names its worker. When a worker's key has
been gone for a while, the release job declares it dead: what its tasks were for is due again at
once, and its claims go to reconciliation (the provider is asked before anything is sent again).
A worker that comes back after being declared dead (a paused VM) finds its tombstone and stops
sending before it sends anything more.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError

from worker.infra.constants import REDIS_PREFIX
from worker.infra.redis_client import await_replica

log = logging.getLogger(__name__)

ALIVE_KEY = REDIS_PREFIX + "alive:"  # + worker name: refreshed every few seconds while it lives
HELD_KEY = REDIS_PREFIX + "held:"  # + kind + ":" + worker name: the ids of the tasks of that kind it holds
HELD_KINDS = ("send", "reconcile", "poll")  # message ids, message ids, line ids
MISSING_KEY = REDIS_PREFIX + "missing:"  # + worker name: since when its alive key is gone
DEAD_KEY = REDIS_PREFIX + "dead:"  # + worker name: declared dead; it must never send again
TOMBSTONE_S = 7 * 24 * 3600
# A fenced worker's warm shutdown waits for its task threads, and one may hang on a connection the
# network cut (a read whose answer was lost with the link); past this it exits at once, as if killed
# (what it held is already taken over, and nothing it does now reaches the provider).
FENCED_EXIT_S = 30.0
FENCED_EXIT_CODE = 3


@dataclass
class Heartbeat:
    """A worker process's alive key, refreshed by a daemon thread every `ttl_s / 5`."""

    redis: Redis
    name: str
    ttl_s: float
    last_ok: float = field(default=0.0)
    fenced: bool = field(default=False)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def interval_s(self) -> float:
        """How often the key is refreshed."""
        return self.ttl_s / 5

    def start(self) -> Heartbeat:
        """Beat once now (so the worker is alive before it takes a task), then on a thread."""
        self.beat()
        threading.Thread(target=self._run, name="outbox-heartbeat", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop beating and remove the key (a clean shutdown)."""
        self._stop.set()
        with contextlib.suppress(RedisError):
            self.redis.delete(ALIVE_KEY + self.name)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def beat(self) -> None:
        """Refresh the key, unless this worker was declared dead: then fence it and shut it down."""
        try:
            declared_dead = self.redis.exists(DEAD_KEY + self.name)
            if not declared_dead:
                self.redis.set(ALIVE_KEY + self.name, str(os.getpid()), px=int(self.ttl_s * 1000))
                self.last_ok = time.monotonic()
                return
        except RedisError as error:
            log.warning("heartbeat failed: %s", error)
            return
        if not self.fenced:
            self.fenced = True
            log.error(
                "worker %s was declared dead while it was away; it sends nothing more and stops", self.name
            )
            os.kill(os.getpid(), signal.SIGTERM)  # a warm shutdown: the supervisor starts a fresh one
            deadline = threading.Timer(FENCED_EXIT_S, _exit_now, args=(self.name,))
            deadline.daemon = True
            deadline.start()

    def may_send(self) -> bool:
        """True while nobody can have declared this worker dead: not fenced, its key refreshed
        recently enough that it cannot have expired, and no tombstone (one round trip: a burial
        writes the tombstone before it touches the dead worker's claims)."""
        if self.fenced or time.monotonic() - self.last_ok >= self.ttl_s - self.interval_s:
            return False
        try:
            return not self.redis.exists(DEAD_KEY + self.name)
        except RedisError:
            return False


def _exit_now(name: str) -> None:
    log.error("worker %s, declared dead, did not stop within %.0f s; exiting now", name, FENCED_EXIT_S)
    os._exit(FENCED_EXIT_CODE)


_heartbeat: Heartbeat | None = None
_identity: str | None = None  # the heartbeat's name: a forked pool child claims under its parent's


def start_heartbeat(redis: Redis, node: str, ttl_s: float) -> Heartbeat:
    """Start this process's heartbeat (a worker calls it once it is ready). Its name is the worker's
    node name and pid: a worker started again under the same node name is another worker."""
    global _heartbeat, _identity
    _heartbeat = Heartbeat(redis, f"{node}/{os.getpid()}", ttl_s).start()
    _identity = _heartbeat.name
    return _heartbeat


def identity(node: str) -> str:
    """The name this process's claims and held tasks go under: its heartbeat's (a pool child's
    parent's), else the node's."""
    return _identity or node


def forget_heartbeat() -> None:
    """A forked pool child has no heartbeat of its own: its copy of the parent's would go stale (the
    beating thread stays in the parent) and fence every send. It is not fenced at all instead, and
    claims under its parent's name, which lives as long as the parent beats."""
    global _heartbeat
    _heartbeat = None


def stop_heartbeat() -> None:
    """Stop this process's heartbeat, if it has one."""
    if _heartbeat is not None:
        _heartbeat.stop()


def may_send() -> bool:
    """Whether this process may call the provider now. Processes without a heartbeat (a prefork
    child, a test calling a step directly) are not fenced: their claims wait for the claim timeout."""
    return _heartbeat is None or _heartbeat.may_send()


def hold(redis: Redis, name: str, kind: str, ids: Iterable[int]) -> None:
    """A worker received a task of this kind (send, reconcile, poll) for these ids."""
    held = list(ids)
    if held:
        redis.sadd(f"{HELD_KEY}{kind}:{name}", *held)


def let_go(redis: Redis, name: str, kind: str, ids: Iterable[int]) -> None:
    """A worker is done with a task of this kind for these ids."""
    held = list(ids)
    if held:
        redis.srem(f"{HELD_KEY}{kind}:{name}", *held)


def held_ids(redis: Redis, kind: str) -> set[int]:
    """The ids of tasks of this kind that any worker holds."""
    keys = list(redis.scan_iter(match=f"{HELD_KEY}{kind}:*", count=500))
    return {int(i) for i in redis.sunion(keys)} if keys else set()


def holders(redis: Redis) -> set[str]:
    """The workers that hold tasks."""
    keys = (_text(key) for key in redis.scan_iter(match=HELD_KEY + "*", count=500))
    return {key.removeprefix(HELD_KEY).split(":", 1)[1] for key in keys}


def newly_dead(redis: Redis, names: Iterable[str], confirm_s: float) -> list[str]:
    """Those of the workers whose alive key has been gone for at least `confirm_s` (seen gone by an
    earlier call too: a key missing for a moment, say Redis restarted empty, is no death)."""
    candidates = sorted(set(names))
    if not candidates:
        return []
    alive = redis.mget([ALIVE_KEY + n for n in candidates])
    now = time.time()
    dead = []
    for name, present in zip(candidates, alive, strict=True):
        if present is not None:
            redis.delete(MISSING_KEY + name)
            continue
        redis.set(MISSING_KEY + name, str(now), nx=True, ex=TOMBSTONE_S)
        since = float(redis.get(MISSING_KEY + name) or now)
        if now - since >= confirm_s:
            dead.append(name)
    return dead


def bury(redis: Redis, name: str) -> dict[str, list[int]]:
    """Declare a worker dead: it may never send again. Returns the ids it held, by kind of task."""
    keys = {kind: f"{HELD_KEY}{kind}:{name}" for kind in HELD_KINDS}
    held = {kind: sorted(int(i) for i in redis.smembers(key)) for kind, key in keys.items()}
    with redis.client() as one:  # one connection: WAIT counts the writes of its own connection
        one.set(DEAD_KEY + name, "1", ex=TOMBSTONE_S)  # the tombstone first: from now on it may not send
        one.delete(*keys.values(), MISSING_KEY + name)
        if not await_replica(one):  # a failover must not lose the tombstone and revive the worker
            log.warning("no Redis replica confirmed worker %s's tombstone in time", name)
    return held


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
