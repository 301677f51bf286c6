"""The deployment files name real commands and real settings (there is no Docker engine here to run
the compose file, so its shape is what can be checked)."""

from __future__ import annotations

import configparser
import ipaddress
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from config.settings import Settings
from worker.cli.root import app

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = set(get_command(app).commands)  # type: ignore[attr-defined]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
COMPOSE_TEXT = (ROOT / "deploy" / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
COMPOSE_VARIABLES = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE_TEXT))


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


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_units_run_outbox_commands_with_the_env_file(unit: Path) -> None:
    service = _unit(unit)["Service"]
    assert service["EnvironmentFile"] == "/etc/zipwhip-outbox/outbox.env"
    assert _outbox_subcommand(service["ExecStart"]) in COMMANDS
    assert service["Restart"] == "always" and float(service["RestartSec"]) > 0


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_units_are_hardened_and_stop_a_crash_loop(unit: Path) -> None:
    parsed = _unit(unit)
    service = parsed["Service"]
    assert service["User"] == "outbox"
    assert service["NoNewPrivileges"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["ProtectHome"] in ("yes", "read-only", "tmpfs")
    assert service["ProtectSystem"] == "strict"
    assert service["WorkingDirectory"] in service["ReadWritePaths"].split()  # all a process writes
    assert int(parsed["Unit"]["StartLimitBurst"]) > 0 and int(parsed["Unit"]["StartLimitIntervalSec"]) > 0


def _env_example() -> dict[str, str]:
    """Every NAME=value of the example, the commented-out ones too (they document settings)."""
    text = (ROOT / "deploy" / ".env.example").read_text()
    return dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.M))


def test_the_env_example_names_only_real_settings() -> None:
    keys = set(_env_example())
    known = _setting_names() | COMPOSE_VARIABLES
    assert keys and keys <= known, keys - known


def test_the_env_example_binds_to_loopback() -> None:
    example = _env_example()
    for key in ("OUTBOX_WEB_HOST", "OUTBOX_FLOWER_HOST"):
        assert ipaddress.ip_address(example[key]).is_loopback, key


def test_the_compose_file_runs_every_process_on_redis_and_postgres() -> None:
    services = COMPOSE["services"]
    assert {"redis", "postgres", "migrate", "web", "worker", "beat", "flower", "simulator"} <= set(services)
    for name in ("web", "worker", "beat", "flower", "migrate", "simulator"):
        assert services[name]["command"][0] == "outbox" and services[name]["command"][1] in COMMANDS
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "deploy" not in services["beat"]  # exactly one beat


def test_compose_publishes_ports_on_loopback_unless_told_otherwise() -> None:
    published = [port for service in COMPOSE["services"].values() for port in service.get("ports", [])]
    assert published
    for port in published:
        host, _, _ = str(port).rpartition(":")[0].rpartition(":")
        assert host, f"{port} is published on every address of the host"
        default = re.fullmatch(r"\$\{[A-Z_]+:-(.+)\}", host)  # an operator's variable, loopback by default
        assert ipaddress.ip_address(default.group(1) if default else host).is_loopback, port


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_compose_takes_the_database_password_from_the_environment() -> None:
    required = r"\$\{POSTGRES_PASSWORD:\?[^}]+\}"
    assert re.fullmatch(required, COMPOSE["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"])
    urls = [s for s in _strings(COMPOSE) if re.match(r"postgres(ql)?(\+\w+)?://", s)]
    assert urls
    for url in urls:  # user:password@host: the password is always the variable, never a literal
        assert re.fullmatch(rf"[^:]+://[^:@/]+:{required}@.+", url), url


def test_compose_offers_rabbitmq_as_the_broker_with_redis_beside_it() -> None:
    services = COMPOSE["services"]
    rabbitmq = services["rabbitmq"]
    assert rabbitmq["profiles"] == ["rabbitmq"] and rabbitmq["healthcheck"]["test"]
    assert any(v.startswith("rabbitmq:") and v.endswith("/var/lib/rabbitmq") for v in rabbitmq["volumes"])
    assert "ports" not in rabbitmq  # the compose network only
    assert re.fullmatch(r"\$\{RABBITMQ_PASSWORD:-\}", rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"])
    for name in ("web", "worker", "beat", "flower", "migrate"):
        environment = services[name]["environment"]
        assert environment["OUTBOX_BROKER_URL"] == "${OUTBOX_BROKER_URL:-redis://redis:6379/0}", name
        assert environment["OUTBOX_REDIS_URL"] == "${OUTBOX_REDIS_URL:-redis://redis:6379/0}", name
    assert services["worker"]["depends_on"]["rabbitmq"] == {"condition": "service_healthy", "required": False}


def test_the_env_example_shows_a_rabbitmq_broker_that_the_settings_accept() -> None:
    text = (ROOT / "deploy" / ".env.example").read_text()
    amqp = re.search(r"^# OUTBOX_BROKER_URL=(amqp://\S+)$", text, flags=re.M)
    redis_url = re.search(r"^# OUTBOX_REDIS_URL=(redis://\S+)$", text, flags=re.M)
    assert amqp and redis_url
    settings = Settings(broker_url=amqp.group(1), redis_url=redis_url.group(1))
    assert settings.effective_redis_url == redis_url.group(1)
    with pytest.raises(ValueError, match="OUTBOX_REDIS_URL"):
        Settings(broker_url=amqp.group(1))
