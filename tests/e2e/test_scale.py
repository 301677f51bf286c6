"""Scale: per-line rates that hold across worker processes on two "hosts", fairness between lines,
and a host that stops without losing anything. Real Redis, real workers, the simulator over HTTP;
the rate is read from the provider's own timestamps (`dateCreated` in message/list)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, func, select

from tests.e2e.conftest import DEMO_LINE, DEMO_PASSWORD, image
from tests.support.services import throwaway_postgres
from tests.support.simulator import SimulatorHandle, run_simulator
from tests.support.stack import Stack, running_stack, wait_for
from worker.app import configure
from worker.infra.constants import SEND_QUEUE
from worker.infra.runtime import Runtime, get_runtime
from worker.lines import login_line
from worker.producer.enqueue import TextRequest, enqueue, enqueue_many
from worker.store.db import make_engine, migrate, transaction
from worker.store.models import Line, Message, Part, utcnow
from worker.store.record import cancel
from worker.store.states import FINAL_STATES

pytestmark = pytest.mark.e2e
OTHER_LINE = "5556667777"
RATE = 5.0  # per second: half a minute of sending is 150 texts
MMS_COST = 2.0  # an MMS takes two of its line's slots


@dataclass
class Hosts:
    """Two "hosts" of two worker processes each (own process groups and hostnames), one beat."""

    stack: Stack
    simulator: SimulatorHandle
    runtime: Runtime


@pytest.fixture(scope="module")
def hosts(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    workdir = tmp_path_factory.mktemp("hosts")
    accounts = ("--account", f"{DEMO_LINE}:{DEMO_PASSWORD}", "--account", f"{OTHER_LINE}:{DEMO_PASSWORD}")
    with (
        run_simulator("--latency-ms", "50", "--delivery-ms", "500", *accounts) as simulator,
        throwaway_postgres() as database_url,
    ):
        engine = make_engine(database_url)
        migrate(engine)
        engine.dispose()
        env = {
            "OUTBOX_BROKER_URL": broker_url,
            "OUTBOX_DATABASE_URL": database_url,
            "ZIPWHIP_BASE_URL": simulator.base_url,
            "OUTBOX_LINE_RATE": str(RATE),
            "OUTBOX_MMS_SEND_COST": str(MMS_COST),
            # An unlimited blast from four workers saturates the simulator on two cores: a slow answer
            # is still an answer here (the fairness measured is the queue's, not the provider's).
            "OUTBOX_PROVIDER_READ_TIMEOUT_S": "15",
        }
        with running_stack(env, workdir, workers=0) as stack:
            for name in ("hostA-1", "hostA-2", "hostB-1", "hostB-2"):
                stack.start_worker(name, concurrency=8)
            configure(stack.settings)
            runtime = get_runtime()
            for line in (DEMO_LINE, OTHER_LINE):
                login_line(runtime, line, None, DEMO_PASSWORD)
            yield Hosts(stack, simulator, runtime)
            runtime.close()


def _provider_times(hosts: Hosts, line: str, body_prefix: str) -> list[float]:
    """When the provider recorded each text of ours with this prefix (its own clock)."""
    key = hosts.runtime.client.login(line, DEMO_PASSWORD)
    times, start = [], 0
    while True:
        page = hosts.runtime.client.list_messages(key, start=start, limit=500)
        times += [m.date_created.timestamp() for m in page.messages if (m.body or "").startswith(body_prefix)]
        if len(page.messages) < 500:
            return sorted(times)
        start += 500


def _final_count(runtime: Runtime, ids: list[int]) -> int:
    with Session(runtime.engine) as session:
        query = select(func.count()).where(
            col(Message.id).in_(ids), col(Message.state).in_([s.value for s in FINAL_STATES])
        )
        return int(session.exec(query).one())  # type: ignore[call-overload]


def test_four_workers_on_two_hosts_keep_one_line_within_5_percent_of_its_rate_and_lose_nothing(
    hosts: Hosts,
) -> None:
    count = int(RATE * 45)
    ids = [enqueue(hosts.runtime, DEMO_LINE, f"+1206555{n:04d}", f"rate check {n}") for n in range(count)]
    sent = wait_for(
        lambda: _spanning(_provider_times(hosts, DEMO_LINE, "rate check"), 32), 120, 1, "32 s of sends"
    )
    window = [t for t in sent if sent[0] + 1 <= t < sent[0] + 31]  # 30 s, past the first slot
    observed = len(window) / 30
    print(f"\nrate: setting {RATE}/s, observed {observed:.3f}/s over 30 s with 4 workers on 2 hosts")
    assert abs(observed - RATE) <= 0.05 * RATE, observed

    for name in ("hostA-1", "hostA-2"):  # host A goes away mid-run (a deploy): host B finishes
        hosts.stack.kill(name, signal.SIGTERM)
    wait_for(lambda: _final_count(hosts.runtime, ids) == count, 120, 1, "every text to be final")
    logs = {name: hosts.stack.log(name) for name in ("hostA-1", "hostA-2", "hostB-1", "hostB-2")}
    assert all("outbox.send[" in log for log in logs.values()), "each worker took a share of the sends"
    counters = hosts.simulator.counters()
    ours = [s for s in counters["sends"] if s["body"].startswith("rate check")]
    assert len(ours) == count and all(s["count"] == 1 for s in ours)  # none lost, none doubled
    assert _busiest_10_s(window) <= RATE * 10 + 1  # never faster than the rate (one slot of jitter)
    # A stopping worker hands back the sends it held for their slots; another worker sends them at
    # once, late, next to on-time ones: a few extra in the 10 s around the handover, never more.
    assert _busiest_10_s(_provider_times(hosts, DEMO_LINE, "rate check")) <= RATE * 10 + 4


def _spanning(times: list[float], seconds: float) -> list[float] | None:
    """The times, once they span at least `seconds` (the provider recorded that long of sending)."""
    return times if times and times[-1] - times[0] >= seconds else None


def _busiest_10_s(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 10) for start in times)


def test_a_line_with_10000_queued_does_not_delay_another_line(hosts: Hosts) -> None:
    backlog = _bulk_queue(hosts.runtime, DEMO_LINE, 10_000)
    started = time.monotonic()
    other = enqueue(hosts.runtime, OTHER_LINE, "+12065559999", "Your table is ready")
    wait_for(lambda: _sent(hosts.runtime, [other]) == 1, 5, 0.1, "the other line's text to be sent")
    print(f"\nfairness: another line's text was sent {time.monotonic() - started:.2f} s after enqueue")
    assert _sent(hosts.runtime, backlog) < 100  # the blast goes at its own rate; the other line did not wait
    _cancel(hosts.runtime, backlog)


def test_a_blast_on_an_unlimited_line_does_not_delay_another_line(hosts: Hosts) -> None:
    _set_rate(hosts.runtime, DEMO_LINE, 0.0)  # this line may send as fast as the workers can
    backlog = _bulk_queue(hosts.runtime, DEMO_LINE, 10_000)
    try:
        wait_for(lambda: _sent(hosts.runtime, backlog) > 300, 60, 0.2, "the blast to be under way")
        # The blast's own pace is the yardstick (a busy machine slows both): another line's text may
        # wait for what the workers already hold, never for the blast's queue.
        paced_from, paced_at = _sent(hosts.runtime, backlog), time.monotonic()
        wait_for(lambda: _sent(hosts.runtime, backlog) >= paced_from + 200, 60, 0.05, "the blast to go on")
        started, before = time.monotonic(), _sent(hosts.runtime, backlog)
        per_s = (before - paced_from) / (started - paced_at)
        other = enqueue(hosts.runtime, OTHER_LINE, "+12065559998", "Your table is ready")
        wait_for(lambda: _sent(hosts.runtime, [other]) == 1, 120, 0.1, "the other line's text to be sent")
        waited = time.monotonic() - started
        blasted = _sent(hosts.runtime, backlog)
        print(
            f"\nfairness: during a blast ({blasted} sent, {per_s:.0f}/s), another line's text was sent "
            f"{waited:.2f} s after, {blasted - before} blast texts later"
        )
        assert blasted < 10_000  # it did not wait for the blast to end
        assert blasted - before <= 5 * per_s, "no longer than five seconds of the blast's own pace"
    finally:
        _cancel(hosts.runtime, backlog)
        _set_rate(hosts.runtime, DEMO_LINE, None)


def _sent(runtime: Runtime, ids: list[int]) -> int:
    """How many of these messages the provider has accepted."""
    with Session(runtime.engine) as session:
        query = select(func.count()).where(col(Part.message_id).in_(ids), col(Part.provider_id).is_not(None))
        return int(session.exec(query).one())


def _set_rate(runtime: Runtime, line_number: str, rate: float | None) -> None:
    with Session(runtime.engine) as session:
        session.execute(update(Line).where(col(Line.phone) == "+1" + line_number).values(rate_per_s=rate))
        session.commit()


def _bulk_queue(runtime: Runtime, line_number: str, count: int) -> list[int]:
    """A backlog from one producer call (`send_messages` in bulk)."""
    texts = [TextRequest(line_number, f"+1425555{n:04d}", f"blast {n}") for n in range(count)]
    return enqueue_many(runtime, texts)


def _cancel(runtime: Runtime, ids: list[int]) -> None:
    """Leave no backlog behind: what is still waiting ends rejected, and the workers have taken every
    send task published for it (the next test measures a line's rate on workers that keep up)."""
    with transaction(runtime.engine) as session:
        cancel(session, ids, utcnow())
    wait_for(
        lambda: runtime.broker.queue_lengths([SEND_QUEUE])[SEND_QUEUE] == 0,
        120,
        0.2,
        "the send queue to drain",
    )


def test_an_mms_takes_the_slots_its_cost_says_across_the_hosts(hosts: Hosts) -> None:
    count = 8
    texts = [
        TextRequest(OTHER_LINE, f"+1206556{n:04d}", f"mms cost {n}", [image("png")]) for n in range(count)
    ]
    ids = enqueue_many(hosts.runtime, texts)
    wait_for(lambda: _sent(hosts.runtime, ids) == count, 30, 0.2, "the pictures to be sent")
    sent = _provider_times(hosts, OTHER_LINE, "mms cost")
    interval = MMS_COST / RATE  # 0.4 s where an SMS would take 0.2 s
    print(f"\nmms cost: {count} pictures over {sent[-1] - sent[0]:.2f} s at {RATE}/s, cost {MMS_COST}")
    assert len(sent) == count and sent[-1] - sent[0] >= (count - 1) * interval * 0.9
