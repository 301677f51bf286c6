"""Helpers shared by the commands: printing, errors, the runtime."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

from worker.runtime import Runtime, get_runtime
from worker.store.db import migrate

console = Console()
errors = Console(stderr=True)


def ready_runtime() -> Runtime:
    """The runtime, with the database schema brought up to date."""
    runtime = get_runtime()
    migrate(runtime.engine)
    return runtime


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error (never a secret) and exit non-zero."""
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)
