"""First use: the producer API and the CLI on a database nobody has set up yet, or cannot reach."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import settings_from
from tasks import InvalidMessage, send_message
from tests.support.stack import ROOT
from worker.app import configure
from worker.infra.runtime import get_runtime


def test_send_message_on_a_fresh_database_sets_the_schema_up_and_names_the_unknown_line(
    tmp_path: Path, broker_url: str
) -> None:
    configure(
        settings_from(
            {"OUTBOX_BROKER_URL": broker_url, "OUTBOX_DATABASE_URL": f"sqlite:///{tmp_path}/new.db"}
        )
    )
    try:
        with pytest.raises(InvalidMessage, match=r"unknown line .*outbox line add 5556661234"):
            send_message("5556661234", "+1 206 555 1234", "Your order shipped")
    finally:
        get_runtime().close()


def test_a_database_that_cannot_be_reached_is_one_line_naming_it_without_its_password() -> None:
    env = {**os.environ, "OUTBOX_DATABASE_URL": "postgresql+psycopg://outbox:s3cret@127.0.0.1:1/outbox"}
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "line", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = " ".join((result.stdout + result.stderr).split())  # the console wraps long lines
    assert result.returncode == 1 and "Traceback" not in said
    assert "cannot use the database postgresql+psycopg://outbox:***@127.0.0.1:1/outbox" in said
    assert "s3cret" not in said
