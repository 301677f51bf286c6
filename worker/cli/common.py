"""Helpers shared by the commands: printing, errors, the runtime."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from worker.infra.runtime import Runtime, get_runtime

console = Console()
errors = Console(stderr=True)


def ready_runtime() -> Runtime:
    """The runtime, with the database schema brought up to date; a database that cannot be reached
    is a one-line error naming it (without its password), not a traceback."""
    runtime = get_runtime()
    try:
        return runtime.ready()
    except OperationalError as error:
        url = make_url(runtime.settings.database_url).render_as_string(hide_password=True)
        reason = str(error.orig or error).strip().splitlines()[0]
        fail(f"cannot use the database {url} (OUTBOX_DATABASE_URL): {reason}")


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error (never a secret) and exit non-zero."""
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)
