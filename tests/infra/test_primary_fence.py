"""The primary fence's decision from what the Sentinels answer (stand-ins for the Sentinels; the real
ones, failing over, are in test_ratelimit_failover.py)."""

from __future__ import annotations

import pytest
from redis import ConnectionError as RedisConnectionError

from worker.infra import primary_fence as fence_module
from worker.infra.primary_fence import RECHECK_S, PrimaryFence, primary_fence

URL = "sentinel://s1:26379;sentinel://s2:26379;sentinel://s3:26379/0?master=outbox"


class FakeSentinel:
    """Answers SENTINEL MASTER as a Sentinel does, or not at all."""

    def __init__(self, port: int = 7000, flags: str = "master", down: bool = False) -> None:
        self.port, self.flags, self.down, self.asked = port, flags, down, 0

    def sentinel_master(self, name: str) -> dict[str, object]:
        self.asked += 1
        if self.down:
            raise RedisConnectionError("no route to host")
        assert name == "outbox"
        return {"ip": "10.0.0.9", "port": self.port, "flags": self.flags}


def fence(*sentinels: FakeSentinel, confirm_s: float = 60.0) -> PrimaryFence:
    return PrimaryFence(URL, confirm_s=confirm_s, sentinels=sentinels)  # type: ignore[arg-type]


def test_all_sentinels_naming_one_primary_in_good_standing_confirm_it() -> None:
    confirmed = fence(FakeSentinel(), FakeSentinel(), FakeSentinel()).primary()
    assert confirmed is not None
    kwargs = confirmed.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("10.0.0.9", 7000, 0)


class Clock:
    """The fence's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(fence_module, "monotonic", clock)
    return clock


FLAGGED = ["master,failover_in_progress,force_failover", "master,s_down", "master,s_down,o_down"]


@pytest.mark.parametrize("flags", FLAGGED)
def test_a_primary_flagged_by_any_sentinel_is_not_confirmed(flags: str) -> None:
    assert fence(FakeSentinel(), FakeSentinel(flags=flags), FakeSentinel()).primary() is None


def test_sentinels_naming_different_primaries_confirm_none() -> None:
    assert fence(FakeSentinel(), FakeSentinel(port=7001), FakeSentinel()).primary() is None


def test_a_majority_must_answer() -> None:
    assert fence(FakeSentinel(), FakeSentinel(down=True), FakeSentinel(down=True)).primary() is None
    assert fence(FakeSentinel(), FakeSentinel(), FakeSentinel(down=True)).primary() is not None


def test_a_confirmation_is_reused_until_it_runs_out_and_then_asked_again(clock: Clock) -> None:
    sentinel = FakeSentinel()
    short = fence(sentinel, confirm_s=1.0)
    first = short.primary()
    clock.now += 0.9
    assert first is not None and short.primary() is first and short.holds(first) and sentinel.asked == 1
    clock.now += 0.1
    assert not short.holds(first)
    assert short.primary() is not first and sentinel.asked == 2


def test_a_refusal_is_not_asked_again_at_once(clock: Clock) -> None:
    sentinel = FakeSentinel(flags="master,o_down")
    refusing = fence(sentinel)
    assert refusing.primary() is None and refusing.primary() is None
    assert sentinel.asked == 1
    clock.now += RECHECK_S
    sentinel.flags = "master"
    assert refusing.primary() is not None and sentinel.asked == 2


def test_one_server_needs_no_fence() -> None:
    assert primary_fence("redis://127.0.0.1:6379/0") is None
    assert isinstance(primary_fence(URL), PrimaryFence)
