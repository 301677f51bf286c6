"""Status callbacks: each state change of a message that has a callback URL is kept as a delivery
row in the transaction that made it, and POSTed, signed, by its own task on its own queue.

The row is written with the change (the writer of locked rows reports every state it gives a
message), so nothing is lost between a commit and a publish; the task is published after the commit, and a
beat job publishes again whatever waits too long (a lost task). A message's deliveries go in order,
one run at a time (a Redis lock): a receiver answering errors holds back that message's later events,
never anyone's sends. Each is retried with backoff for `callback_retry_for_s`, then given up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from redis import Redis
from sqlalchemy import event
from sqlmodel import Session

from worker.api.callback_url import networks, resolved_problem
from worker.api.signing import SIGNATURE_HEADER, sign
from worker.infra.constants import CALLBACK_LOCK_KEY, TASK_CALLBACK
from worker.store.callbacks import (
    CallbackAddress,
    add_deliveries,
    callback_wish,
    delivery_failed,
    finish_delivery,
    lost_deliveries,
    pending_deliveries,
)
from worker.store.models import CallbackDelivery, Message, utcnow
from worker.store.states import FINAL_STATES, State

log = logging.getLogger(__name__)

EVENTS = ("all", "final")
BACKOFF_FIRST_S = 2.0
BACKOFF_MAX_S = 300.0  # far below the broker's visibility timeout (a countdown past it runs twice)
LOST_AFTER_S = 30.0  # a delivery due this long ago that no task took is published again
_PENDING = "outbox_callbacks"  # ids of messages with new deliveries in this session's transaction


def backoff_s(attempts: int) -> float:
    """The wait after the n-th failed attempt: 2, 4, 8 ... seconds, at most five minutes."""
    return float(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, attempts - 1)))


def wanted(events: str | None, state: str) -> bool:
    """Whether a callback asking for `events` is told about a move to `state`."""
    return events == "all" or (events == "final" and State(state) in FINAL_STATES)


def note_changes(session: Session, messages: list[Message]) -> None:
    """Messages whose new state `worker.store.locked_rows` just wrote (every writer's changes go that
    way): a delivery row for each whose callback wants to hear of it, in the same transaction."""
    rows = [
        {"message_id": m.id, "state": m.state, "at": m.updated_at or utcnow()}
        for m in messages
        if m.callback_url and wanted(m.callback_events, m.state)
    ]
    if rows:
        add_deliveries(session, rows)
        session.info.setdefault(_PENDING, set()).update(r["message_id"] for r in rows)


def note_plain_change(session: Session, message_id: int, state: State, at: datetime) -> None:
    """A state written by a plain statement (`quarantine`), which the flush listener cannot see."""
    url, events = callback_wish(session, message_id)
    if url and wanted(events, state):
        add_deliveries(session, [{"message_id": message_id, "state": state.value, "at": at}])
        session.info.setdefault(_PENDING, set()).add(message_id)


@event.listens_for(Session, "after_commit")
def _publish(session: Session) -> None:
    ids = session.info.pop(_PENDING, None)
    if ids:
        publish(sorted(ids))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def publish(message_ids: list[int]) -> None:
    """Hand each message's deliveries to a callback task (the sweep retries what this fails to)."""
    from worker.app import app

    try:
        for message_id in message_ids:
            app.send_task(TASK_CALLBACK, args=[message_id])
    except Exception:
        log.warning("status callbacks of %d messages not published; the sweep will", len(message_ids))


@dataclass(frozen=True)
class Delivered:
    """What a run did: events told, and when it should run again (None: nothing is waiting)."""

    told: int
    again_in_s: float | None


def deliver(engine: Any, redis: Redis, settings: Any, message_id: int, http: requests.Session) -> Delivered:
    """POST every due delivery of a message, in order, stopping at the first refused one."""
    # Long enough for every event of a message to wait its full timeout.
    with _exclusive(redis, message_id, settings.callback_timeout_s * 16 + 10) as mine:
        if not mine:
            return Delivered(0, None)  # the run holding it takes what is due, or its task runs again
        return _deliver(engine, settings, message_id, http)


def _deliver(engine: Any, settings: Any, message_id: int, http: requests.Session) -> Delivered:
    target, pending = pending_deliveries(engine, message_id)
    told = 0
    for delivery in pending:
        now = utcnow()
        due = _aware(delivery.next_attempt_at)
        if due is not None and due > now:
            return Delivered(told, (due - now).total_seconds())
        if target is None:
            _finish(engine, delivery, given_up="no callback URL or signing key")
            continue
        if now - _aware(delivery.at) > timedelta(seconds=settings.callback_retry_for_s):  # type: ignore[operator]
            _finish(engine, delivery, given_up=f"not taken in {settings.callback_retry_for_s:.0f} s")
            continue
        refused = resolved_problem(target.url, networks(settings.callback_private_networks))
        if refused:
            _finish(engine, delivery, given_up=refused)  # an address we must not call: no retry
            continue
        error = _post(http, target, delivery, settings.callback_timeout_s)
        if error is None:
            _finish(engine, delivery)
            told += 1
            continue
        wait = backoff_s(delivery.attempts + 1)
        _failed(engine, delivery, error, now + timedelta(seconds=wait))
        return Delivered(told, wait)
    return Delivered(told, None)


def payload(target: CallbackAddress, delivery: CallbackDelivery) -> bytes:
    """The body of one event (compact JSON: what is signed is exactly what is sent)."""
    body = {
        "event_id": delivery.id,
        **target.facts,
        "state": delivery.state,
        "final": State(delivery.state) in FINAL_STATES,
        "at": _aware(delivery.at).isoformat(),  # type: ignore[union-attr]
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _post(
    http: requests.Session, target: CallbackAddress, delivery: CallbackDelivery, timeout_s: float
) -> str | None:
    body = payload(target, delivery)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(target.secret, body)}
    try:
        answer = http.post(target.url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as error:
        return f"{type(error).__name__}"
    answer.close()
    return None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"


def _finish(engine: Any, delivery: CallbackDelivery, given_up: str | None = None) -> None:
    found = finish_delivery(engine, delivery.id or 0, utcnow(), given_up)
    if found and given_up:
        log.warning(
            "status callback %s of message %s given up: %s", delivery.id, delivery.message_id, given_up
        )


def _failed(engine: Any, delivery: CallbackDelivery, error: str, next_at: datetime) -> None:
    delivery_failed(engine, delivery.id or 0, error, next_at)


def lost_messages(engine: Any, limit: int = 500) -> list[int]:
    """Messages with a delivery due for a while that no task has taken (its publish was lost)."""
    return lost_deliveries(engine, utcnow() - timedelta(seconds=LOST_AFTER_S), limit)


@contextmanager
def _exclusive(redis: Redis, message_id: int, timeout_s: float) -> Iterator[bool]:
    lock = redis.lock(f"{CALLBACK_LOCK_KEY}{message_id}", timeout=timeout_s, blocking=False)
    if not lock.acquire():
        yield False
        return
    try:
        yield True
    finally:
        try:
            lock.release()
        except Exception:
            log.warning("callback lock of message %s expired before its run ended", message_id)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes: they are UTC."""
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
