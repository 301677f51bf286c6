"""The README tells the truth: every setting is in its table, and its curl examples work."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from config.settings import Settings
from tests.support.simulator import run_simulator

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_settings_table() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.M))
    expected = set()
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None)
        expected.add(str(aliases[0]) if aliases else f"OUTBOX_{name.upper()}")
    assert expected == documented


def test_the_curl_examples_work_against_a_running_simulator() -> None:
    block = next(b for b in re.findall(r"```sh\n(.*?)```", README, flags=re.S) if "user/login" in b)
    with run_simulator() as simulator:
        port = simulator.base_url.rsplit(":", 1)[1].rstrip("/")
        script = block.replace("127.0.0.1:8900", f"127.0.0.1:{port}")
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env=os.environ,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"success":true') == 2  # the send and the get
    assert '"body":"Hi again"' in result.stdout
