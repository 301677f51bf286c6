"""Running it: `outbox demo` from start to summary, and Flower showing the tasks (behind auth)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tasks import send_message
from tests.e2e.conftest import DEMO_LINE, Deployment, fresh_recipient
from tests.support.simulator import free_port
from tests.support.stack import ROOT, wait_for

pytestmark = pytest.mark.e2e


def test_the_demo_runs_to_its_summary_with_every_message_as_expected(broker_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.cli",
            "demo",
            "--messages",
            "60",
            "--workdir",
            str(tmp_path),
            "--timeout",
            "120",
        ],
        cwd=ROOT,
        env={**os.environ, "OUTBOX_BROKER_URL": broker_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "summary" in output and "duplicates at the provider: 0" in output
    assert re.search(r"time to final: p50 [\d.]+s, p95 [\d.]+s", output)
    assert "Flower: http://127.0.0.1:" in output
    assert not (tmp_path / "flower.log").read_text().count("Traceback")


@pytest.fixture(scope="module")
def flower(deployment: Deployment) -> Iterator[tuple[str, tuple[str, str]]]:
    port = free_port()
    auth = ("ops", "s3cret-for-tests")
    env = {**deployment.stack.env, "FLOWER_BASIC_AUTH": ":".join(auth), "OUTBOX_FLOWER_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "flower"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 401
        except requests.RequestException:
            return False

    def sees_events() -> bool:  # beat's release job runs every second: its task events prove the stream
        try:
            return bool(requests.get(url + "api/tasks", auth=auth, timeout=5).json())
        except (requests.RequestException, ValueError):
            return False

    try:
        wait_for(up, 60, 0.3, "Flower to start")
        wait_for(sees_events, 60, 0.5, "Flower to receive task events")
        yield url, auth
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize("deployment", ["sqlite"], indirect=True)
def test_flower_shows_the_tasks_by_name_with_ids_only_and_refuses_strangers(
    deployment: Deployment, flower: tuple[str, tuple[str, str]]
) -> None:
    url, auth = flower
    to = fresh_recipient()
    ids = [send_message(DEMO_LINE, to, f"Flower check {n}") for n in range(3)]
    for message_id in ids:
        assert deployment.wait_final(message_id)["state"] == "delivered"

    def tasks() -> dict[str, dict[str, object]] | None:
        found = requests.get(url + "api/tasks", auth=auth, timeout=5).json()
        names = {t["name"] for t in found.values()}
        done = [t for t in found.values() if t["name"] == "outbox.poll_line" and t["state"] == "SUCCESS"]
        return found if {"outbox.send", "outbox.poll_line"} <= names and done else None

    found = wait_for(tasks, 30, 0.5, "Flower to list the tasks")
    sends = [task for task in found.values() if task["name"] == "outbox.send"]
    for task in sends:  # a send task carries a batch of message ids, and nothing else
        assert re.fullmatch(r"[\[(]\[\d+(,\d+)*\],?[\])]", str(task["args"]).replace(" ", "")), task["args"]
    by_message = {int(i): task for task in sends for i in re.findall(r"\d+", str(task["args"]))}
    assert set(ids) <= set(by_message), found
    for message_id in ids:
        task = by_message[message_id]
        assert task["state"] == "SUCCESS" and f"message {message_id}" in str(task["result"])
    for task in found.values():
        assert to not in str(task["args"]) + str(task["kwargs"]) + str(task["result"])  # ids only
    assert requests.get(url + "api/tasks", timeout=5).status_code == 401
    assert requests.get(url + "api/tasks", auth=("ops", "wrong"), timeout=5).status_code == 401
