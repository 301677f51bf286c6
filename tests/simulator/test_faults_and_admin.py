"""The simulator's own behaviour: faults (random and scripted), determinism, limits, timeline, admin."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.simulator import SimulatorHandle, run_simulator

LINE = "5556661234"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator("--delivery-ms", "600") as handle:
        yield handle


@pytest.fixture(autouse=True)
def clean(sim: SimulatorHandle) -> None:
    sim.reset()


def send(sim: SimulatorHandle, key: str, to: str, body: str = "hi") -> requests.Response:
    return requests.post(
        sim.base_url + "message/send", data={"session": key, "contacts": to, "body": body}, timeout=10
    )


def outcome_of(response: requests.Response) -> str:
    if response.status_code not in (200, 400):
        return f"http:{response.status_code}"
    answer = response.json()
    return "ok" if answer["success"] else f"code:{answer['response']['code']}"


def test_random_faults_follow_the_rate_and_the_same_seed_repeats_them() -> None:
    runs: list[list[str]] = []
    for _ in range(2):
        with run_simulator("--fault-rate", "0.3") as sim:
            sim.set_faults(mix={"slow": 0, "drop_after_record": 0, "drop_before_record": 0})
            key = sim.login()
            runs.append([outcome_of(send(sim, key, f"+1206555{n:04d}")) for n in range(200)])
    assert runs[0] == runs[1]  # --seed 1 both times
    faults = sum(o != "ok" for o in runs[0])
    assert 30 <= faults <= 90  # about 30% of 200
    assert {"code:-855", "code:-1", "http:500", "http:429"} <= set(runs[0])


def test_scripted_outcomes_are_consumed_in_order(sim: SimulatorHandle) -> None:
    key = sim.login()
    sim.script("+12065550101", outcomes=["code:-855", "http:500", "ok"])
    outcomes = [outcome_of(send(sim, key, "2065550101")) for _ in range(4)]
    assert outcomes == ["code:-855", "http:500", "ok", "ok"]
    assert [s["count"] for s in sim.counters()["sends"]] == [2]  # same body twice: one duplicate
    assert sim.counters()["duplicates"] == 1


def test_a_scripted_delivery_failure_ends_with_its_reason(sim: SimulatorHandle) -> None:
    key = sim.login()
    sim.script("+12065550102", delivery={"statusCode": 5, "messageStatus": 1116})
    message_id = send(sim, key, "2065550102").json()["response"]["root"]

    def status() -> dict[str, Any]:
        answer = requests.get(sim.base_url + "message/get", params={"session": key, "id": message_id}).json()
        return answer["response"]  # type: ignore[no-any-return]

    first = status()
    assert (first["statusCode"], first["isInFinalState"]) == (1, False)
    time.sleep(0.7)
    final = status()
    assert (final["statusCode"], final["messageStatus"], final["isInFinalState"]) == (5, 1116, True)
    assert final["transmissionState"]["name"] == "ERROR"


def test_the_fail_share_fails_about_that_share(sim: SimulatorHandle) -> None:
    sim.set_faults(fail_share=0.5, delivery_ms=0)
    key = sim.login()
    ids = [send(sim, key, f"+1206556{n:04d}").json()["response"]["root"] for n in range(100)]
    codes = [
        requests.get(sim.base_url + "message/get", params={"session": key, "id": i}).json()["response"][
            "statusCode"
        ]
        for i in ids
    ]
    assert set(codes) == {4, 5} and 30 <= codes.count(5) <= 70


def test_the_per_line_rate_limit_answers_429_with_retry_after(sim: SimulatorHandle) -> None:
    sim.set_faults(rate_limit_per_line=2)
    key = sim.login()
    responses = [send(sim, key, f"+1206557{n:04d}") for n in range(5)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited and all(r.headers.get("Retry-After") for r in limited)
    assert responses[0].status_code == 200


def test_invalidated_sessions_stop_working_and_login_works_again(sim: SimulatorHandle) -> None:
    key = sim.login()
    sim.invalidate_sessions(LINE)
    assert send(sim, key, "+12065550103").status_code == 401
    assert send(sim, sim.login(), "+12065550103").status_code == 200


def test_fault_settings_are_validated(sim: SimulatorHandle) -> None:
    bad = requests.put(sim.base_url + "_sim/faults", json={"no_such_knob": 1}, timeout=5)
    assert bad.status_code == 400
    worse = requests.put(sim.base_url + "_sim/faults", json={"mix": {"explode": 1}}, timeout=5)
    assert worse.status_code == 400
    assert sim.set_faults(latency_ms=5)["latency_ms"] == 5


def test_reset_forgets_messages_but_keeps_sessions(sim: SimulatorHandle) -> None:
    key = sim.login()
    send(sim, key, "+12065550104")
    assert sim.counters()["messages"] == 1
    sim.reset()
    assert sim.counters()["messages"] == 0 and send(sim, key, "+12065550104").status_code == 200


def test_forget_drops_the_messages_but_never_hands_an_id_out_twice(sim: SimulatorHandle) -> None:
    key = sim.login()
    first = send(sim, key, "+12065550106").json()["response"]["root"]
    calls = sim.counters()["calls"]["message/send"]
    forgotten = requests.post(sim.base_url + "_sim/forget", timeout=5).json()["forgotten"]
    assert forgotten >= 1 and sim.counters()["messages"] == 0
    assert sim.counters()["calls"]["message/send"] == calls  # counters stay
    listing = requests.get(sim.base_url + "message/list", params={"session": key}).json()["response"]
    assert listing == []
    second = send(sim, key, "+12065550106").json()["response"]["root"]
    assert int(second) > int(first)


def test_inbound_stop_and_start_change_the_opt_out(sim: SimulatorHandle) -> None:
    key = sim.login()
    assert sim.inbound(LINE, "+12065550105", "Stop")["optout"] == "stop"
    assert send(sim, key, "+12065550105").json()["response"]["code"] == -1234
    assert sim.inbound(LINE, "+12065550105", "START")["optout"] == "start"
    assert send(sim, key, "+12065550105").status_code == 200
    listing = requests.get(sim.base_url + "message/list", params={"session": key}).json()["response"]
    assert [m["type"] for m in listing[:3]] == ["ZO", "MO", "MO"]  # the refused send left no trace


def test_latency_is_added_to_every_call(sim: SimulatorHandle) -> None:
    sim.set_faults(latency_ms=200)
    key = sim.login()
    started = time.monotonic()
    send(sim, key, "+12065550106")
    assert time.monotonic() - started >= 0.2
