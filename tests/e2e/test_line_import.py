"""`outbox line import`: many lines logged in from a CSV file against the simulator over HTTP, a
result per line, the bad ones named, no password printed or stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.simulator import run_simulator
from tests.support.stack import ROOT

pytestmark = pytest.mark.e2e
SECRET = "demo"
WRONG = "not-the-password-7f3a"


def test_lines_are_imported_from_a_csv_with_a_result_each(tmp_path: Path) -> None:
    rows = [f"555800000{n},,{SECRET}" for n in range(5)]
    rows += [f"5558000005,,{WRONG}"]  # a line of the provider's, the wrong password
    rows += [f"12,,{SECRET}"]  # not a number
    csv_file = tmp_path / "lines.csv"
    csv_file.write_text("phone,username,password\n" + "\n".join(rows) + "\n")
    database = tmp_path / "outbox.db"
    with run_simulator("--line-range", "5558000000:6") as simulator:
        env = {
            **os.environ,
            "OUTBOX_DATABASE_URL": f"sqlite:///{database}",
            "ZIPWHIP_BASE_URL": simulator.base_url,
        }
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", "line", "import", str(csv_file), "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr  # some failed: the script that called it can tell
    results = json.loads(done.stdout)
    assert [r["result"] for r in results[:5]] == ["logged in"] * 5
    assert "refused" in results[5]["result"] and "line" in results[6]["result"]
    assert SECRET not in done.stdout + done.stderr and WRONG not in done.stdout + done.stderr
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT phone, session_key FROM line ORDER BY phone")).all()
    engine.dispose()
    assert [phone for phone, _ in stored] == [f"+1555800000{n}" for n in range(5)]
    assert all(key for _, key in stored)
