"""The deployment files name real commands and real settings (there is no Docker engine here to run
the compose file, so its shape is what can be checked)."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from config.settings import Settings
from worker.cli.root import app

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = set(get_command(app).commands)  # type: ignore[attr-defined]


def _setting_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"OUTBOX_{name.upper()}")
        aliases = getattr(field.validation_alias, "choices", None) or []
        names.update(str(a).upper() for a in aliases)
    return names


def _outbox_subcommand(command: str) -> str:
    words = shlex.split(command)
    assert Path(words[0]).name == "outbox", command
    return words[1]


def test_the_procfile_has_every_process_and_real_commands() -> None:
    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert set(lines) == {"web", "worker", "beat", "flower", "simulator"}
    for command in lines.values():
        assert _outbox_subcommand(command) in COMMANDS


@pytest.mark.parametrize(
    "unit", sorted((ROOT / "deploy" / "systemd").glob("*.service")), ids=lambda p: p.name
)
def test_systemd_units_run_outbox_commands_with_the_env_file(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(unit.read_text())
    service = parser["Service"]
    assert service["EnvironmentFile"] == "/etc/zipwhip-outbox/outbox.env"
    assert _outbox_subcommand(service["ExecStart"]) in COMMANDS
    assert service["Restart"] == "always"


def test_the_env_example_names_only_real_settings() -> None:
    keys = {
        line.split("=", 1)[0]
        for line in (ROOT / "deploy" / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert keys and keys <= _setting_names(), keys - _setting_names()


def test_the_compose_file_runs_every_process_on_redis_and_postgres() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "migrate", "web", "worker", "beat", "flower", "simulator"} <= set(services)
    for name in ("web", "worker", "beat", "flower", "migrate", "simulator"):
        assert services[name]["command"][0] == "outbox" and services[name]["command"][1] in COMMANDS
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "deploy" not in services["beat"]  # exactly one beat
