"""The Procfile runs with honcho, and a newcomer's CLI steps work against it: add a line, send,
read the status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.simulator import free_port
from tests.support.stack import ROOT, wait_for

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def test_honcho_starts_every_process_and_a_text_goes_out(broker_url: str, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("web", "flower", "simulator")}
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "OUTBOX_BROKER_URL": broker_url,
        "OUTBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "ZIPWHIP_BASE_URL": f"http://127.0.0.1:{ports['simulator']}/",
        "OUTBOX_SIMULATOR_PORT": str(ports["simulator"]),
        "OUTBOX_WEB_PORT": str(ports["web"]),
        "OUTBOX_FLOWER_PORT": str(ports["flower"]),
        "FLOWER_BASIC_AUTH": "ops:secret",
        "OUTBOX_BEAT_SCHEDULE_PATH": str(tmp_path / "beat-schedule"),
        "OUTBOX_POLL_DELAYS_S": "[0.5, 1]",
        "OUTBOX_METRICS_REFRESH_S": "0.5",
    }
    log = open(tmp_path / "honcho.log", "wb")  # noqa: SIM115 - honcho's whole life
    honcho = subprocess.Popen(
        [str(BIN / "honcho"), "-f", str(ROOT / "Procfile"), "-d", str(tmp_path), "start"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(BIN / "outbox"), *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    try:
        for url in (
            f"http://127.0.0.1:{ports['web']}/healthz",
            f"http://127.0.0.1:{ports['simulator']}/_sim/health",
        ):
            wait_for(lambda url=url: _answers(url), 60, 0.3, url)
        wait_for(lambda: _answers(f"http://127.0.0.1:{ports['flower']}/"), 90, 0.3, "flower")
        wait_for(
            lambda: "ready." in (tmp_path / "honcho.log").read_text(errors="replace"), 60, 0.3, "the worker"
        )
        run("line", "add", "5556661234", "--password", "demo")
        message_id = json.loads(
            run("send", "--line", "5556661234", "--to", "2065551234", "--body", "Hi!", "--json")
        )["id"]
        report = wait_for(
            lambda: (r := json.loads(run("status", "--json", str(message_id))))["state"] == "delivered" and r,
            60,
            0.5,
            "the message to be delivered",
        )
        assert report["parts"][0]["kind"] == "sms"
        assert requests.get(f"http://127.0.0.1:{ports['flower']}/api/workers", timeout=5).status_code == 401
        metrics = f"http://127.0.0.1:{ports['web']}/metrics"  # read by the web process every 0.5 s
        wait_for(
            lambda: 'outbox_messages{state="delivered"} 1.0' in requests.get(metrics, timeout=5).text,
            30,
            0.3,
            "the metrics to count the delivered message",
        )
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        honcho.wait(timeout=60)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False
