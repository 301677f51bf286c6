"""Running it: `outbox demo` from start to summary, and Flower showing the tasks (behind auth)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tasks import send_message
from tests.e2e.conftest import DEMO_LINE, Deployment, fresh_recipient
from tests.support.simulator import free_port
from tests.support.stack import ROOT, wait_for
from worker.inbound.webhooks import hook_token

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


@pytest.mark.parametrize(
    "credentials", [":", "ops:", ":s3cret-x", "ops", "ops:s3cret-x,:", "  :s3cret-x"], ids=repr
)
def test_flower_refuses_to_start_with_an_empty_user_or_password(
    credentials: str, broker_url: str, tmp_path: Path
) -> None:
    result = subprocess.run(  # were the check to pass, Flower would run on and the timeout would fail it
        [sys.executable, "-m", "worker.cli", "flower"],
        cwd=tmp_path,  # no .env here
        env={
            **os.environ,
            "OUTBOX_BROKER_URL": broker_url,
            "FLOWER_BASIC_AUTH": credentials,
            "OUTBOX_FLOWER_PORT": str(free_port()),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH needs user:password pairs with neither side empty" in result.stderr
    assert "s3cret-x" not in result.stdout + result.stderr


WEB_SECRET = "web-test-secret"
METRICS_TOKEN = "web-test-metrics-token"


@contextmanager
def _web(broker_url: str, tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """The real web process (`outbox web`, uvicorn) on a free port; yields its URL."""
    port = free_port()
    settings = {
        "OUTBOX_BROKER_URL": broker_url,
        "OUTBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "OUTBOX_WEB_PORT": str(port),
        "OUTBOX_WEBHOOK_SECRET_KEY": WEB_SECRET,
        "OUTBOX_WEBHOOK_ALLOWED_SOURCES": '["203.0.113.0/24"]',
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "web"],
        cwd=tmp_path,
        env={**os.environ, **settings},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, 60, 0.2, "the web process")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _hook_from_allowed_network(url: str) -> int:
    """A webhook call from loopback that claims (X-Forwarded-For) to come from the allowed network,
    with a malformed body: 403 if the claim is disbelieved, 400 if believed."""
    line = "+15556661234"
    hook = f"{url}/hooks/{line.lstrip('+')}/{hook_token(WEB_SECRET, line)}/message/progress"
    headers = {"X-Forwarded-For": "203.0.113.9", "Content-Type": "application/json"}
    return requests.post(hook, data=b"[1]", headers=headers, timeout=5).status_code


def test_the_web_process_believes_no_forwarded_header_unless_a_proxy_is_configured(
    broker_url: str, tmp_path: Path
) -> None:
    with _web(broker_url, tmp_path, {"OUTBOX_METRICS_TOKEN": METRICS_TOKEN}) as url:
        assert _hook_from_allowed_network(url) == 403
        assert requests.get(url + "/metrics", timeout=5).status_code == 401
        answer = requests.get(
            url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5
        )
        assert answer.status_code == 200 and "outbox_metrics_age_seconds" in answer.text
    with _web(broker_url, tmp_path, {"OUTBOX_WEB_TRUSTED_PROXIES": '["127.0.0.0/8"]'}) as url:
        assert _hook_from_allowed_network(url) == 400  # from a trusted proxy: the claim stands
        assert requests.get(url + "/metrics", timeout=5).status_code == 200  # no token set: open
