"""A worker declared dead stops: a warm shutdown at once, and an exit of its own if that hangs."""

from __future__ import annotations

import signal
import threading

import pytest
import redis

from worker.pipeline import liveness
from worker.pipeline.liveness import DEAD_KEY, FENCED_EXIT_CODE, Heartbeat


def test_a_worker_declared_dead_shuts_down_and_exits_if_the_shutdown_hangs(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    signals: list[int] = []
    exited = threading.Event()
    codes: list[int] = []
    monkeypatch.setattr(liveness.os, "kill", lambda pid, sig: signals.append(sig))
    monkeypatch.setattr(liveness.os, "_exit", lambda code: (codes.append(code), exited.set()))
    monkeypatch.setattr(liveness, "FENCED_EXIT_S", 0.01)
    heartbeat = Heartbeat(client, "host-b@vm/1", ttl_s=10)
    heartbeat.beat()
    assert heartbeat.may_send() and not signals

    client.set(DEAD_KEY + heartbeat.name, "1")  # the release job buried it while it was cut off
    heartbeat.beat()
    assert not heartbeat.may_send()
    assert signals == [signal.SIGTERM], "a warm shutdown first"
    assert exited.wait(30), "then an exit of its own (the shutdown hung: nothing ended the process)"
    assert codes == [FENCED_EXIT_CODE]
    heartbeat.beat()
    assert signals == [signal.SIGTERM], "asked once"
