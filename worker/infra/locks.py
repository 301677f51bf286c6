"""One run at a time of a beat job, across every worker on every host: a lock in Redis that is kept
alive while the run works, however long it takes, and never fails a run whose work is done."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import LockError, RedisError

from worker.infra.constants import LOCK_KEY

log = logging.getLogger(__name__)


@contextmanager
def exclusive(redis: Redis, name: str, timeout_s: float) -> Iterator[bool]:
    """Hold the lock `name` for the block (yields True), or yield False if another run holds it.

    The lock expires `timeout_s` after its last renewal, so a run whose worker dies frees it soon;
    a thread renews it every third of that while the block runs. Should it expire all the same (Redis
    unreachable for a while), the run still ends normally: its work is committed, and an overlapping
    run only leases what is still due, so it cannot send anything twice."""
    # Not thread-local: the thread that renews it must see the token the run took it with.
    lock = redis.lock(LOCK_KEY + name, timeout=timeout_s, blocking=False, thread_local=False)
    if not lock.acquire():
        yield False
        return
    done = threading.Event()
    keeper = threading.Thread(target=_keep, args=(lock, name, timeout_s, done), daemon=True)
    keeper.start()
    try:
        yield True
    finally:
        done.set()
        keeper.join()
        try:
            lock.release()
        except LockError:
            log.warning("the %s lock expired while its run worked; the run's work is committed", name)
        except RedisError as error:
            log.warning("could not release the %s lock (%s); it expires by itself", name, error)


def _keep(lock: object, name: str, timeout_s: float, done: threading.Event) -> None:
    while not done.wait(timeout_s / 3):
        try:
            lock.reacquire()  # type: ignore[attr-defined]
        except (LockError, RedisError) as error:
            log.warning("could not renew the %s lock: %s", name, error)
            return
