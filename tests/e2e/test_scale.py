"""Scale: per-line rates that hold across worker processes on two "hosts", fairness between lines,
and a host that stops without losing anything. Real Redis, real workers, the simulator over HTTP;
the rate is read from the provider's own timestamps (`dateCreated` in message/list)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import insert, update
from sqlmodel import Session, col, func, select

from tests.e2e.conftest import DEMO_LINE, DEMO_PASSWORD
from tests.support.services import throwaway_postgres
from tests.support.simulator import SimulatorHandle, run_simulator
from tests.support.stack import Stack, running_stack, wait_for
from worker.app import configure
from worker.enqueue import enqueue
from worker.lines import login_line
from worker.runtime import Runtime, get_runtime
from worker.store.db import make_engine, migrate
from worker.store.models import Line, Message, Part, utcnow
from worker.store.states import FINAL_STATES

pytestmark = pytest.mark.e2e
OTHER_LINE = "5556667777"
RATE = 5.0  # per second: a minute of sending is 300 texts


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
    count = int(RATE * 75)
    ids = [enqueue(hosts.runtime, DEMO_LINE, f"+1206555{n:04d}", f"rate check {n}") for n in range(count)]
    time.sleep(62)
    sent = _provider_times(hosts, DEMO_LINE, "rate check")
    window = [t for t in sent if sent[0] + 1 <= t < sent[0] + 61]  # a full minute, past the first slot
    observed = len(window) / 60
    print(f"\nrate: setting {RATE}/s, observed {observed:.3f}/s over 60 s with 4 workers on 2 hosts")
    assert abs(observed - RATE) <= 0.05 * RATE, observed

    for name in ("hostA-1", "hostA-2"):  # host A goes away mid-run (a deploy): host B finishes
        hosts.stack.kill(name, signal.SIGTERM)
    wait_for(lambda: _final_count(hosts.runtime, ids) == count, 120, 1, "every text to be final")
    logs = {name: hosts.stack.log(name) for name in ("hostA-1", "hostA-2", "hostB-1", "hostB-2")}
    assert all("outbox.send[" in log for log in logs.values()), "each worker took a share of the sends"
    counters = hosts.simulator.counters()
    ours = [s for s in counters["sends"] if s["body"].startswith("rate check")]
    assert len(ours) == count and all(s["count"] == 1 for s in ours)  # none lost, none doubled
    everything = _provider_times(hosts, DEMO_LINE, "rate check")
    busiest = max(sum(1 for t in everything if start <= t < start + 10) for start in everything)
    assert busiest <= RATE * 10 + 1, busiest  # never faster than the rate over any 10 s (one slot of jitter)


def test_a_line_with_10000_queued_does_not_delay_another_line(hosts: Hosts) -> None:
    backlog = _bulk_queue(hosts.runtime, DEMO_LINE, 10_000)
    started = time.monotonic()
    other = enqueue(hosts.runtime, OTHER_LINE, "+12065559999", "Your table is ready")

    def sent() -> bool:
        with Session(hosts.runtime.engine) as session:
            return session.exec(select(Part.provider_id).where(Part.message_id == other)).one() is not None

    wait_for(sent, 10, 0.1, "the other line's text to be sent")
    print(f"\nfairness: another line's text was sent {time.monotonic() - started:.2f} s after enqueue")
    with Session(hosts.runtime.engine) as session:
        still_queued = session.exec(
            select(func.count()).where(col(Message.id).in_(backlog), Message.state == "queued")
        ).one()
    assert still_queued > 9_900  # the blast goes at its own rate; the other line did not wait for it
    _cancel(hosts.runtime, backlog)


def _bulk_queue(runtime: Runtime, line_number: str, count: int) -> list[int]:
    """A backlog written straight to the tables (enqueueing 10,000 one by one would take minutes)."""
    now = utcnow()
    with Session(runtime.engine) as session:
        line_id = session.exec(select(Line.id).where(Line.phone == "+1" + line_number)).one()
        messages = [
            {"line_id": line_id, "recipient": f"+1425555{n:04d}", "state": "queued", "created_at": now}
            for n in range(count)
        ]
        ids = list(session.execute(insert(Message).returning(col(Message.id)), messages).scalars())
        parts = [
            {"message_id": i, "line_id": line_id, "position": 0, "kind": "sms", "body": "blast"}
            | {"body_bytes": 5, "payload_bytes": 5, "state": "queued", "due_at": now}
            for i in ids
        ]
        session.execute(insert(Part), parts)
        session.commit()
    return ids


def _cancel(runtime: Runtime, ids: list[int]) -> None:
    """Leave no backlog behind: what is still waiting ends rejected."""
    with Session(runtime.engine) as session:
        waiting = ["queued", "retrying"]
        session.execute(
            update(Part)
            .where(col(Part.message_id).in_(ids), col(Part.state).in_(waiting))
            .values(state="rejected")
        )
        session.execute(
            update(Message)
            .where(col(Message.id).in_(ids), col(Message.state).in_(waiting))
            .values(state="rejected")
        )
        session.commit()
