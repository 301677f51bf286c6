"""`outbox`: one command for every job (simulator, lines, sending, status, processes)."""

from __future__ import annotations

import typer

from worker.cli import apikeys, conversations, lines, messages, processes

app = typer.Typer(
    name="outbox",
    help="Queue-backed outbound texting for Zipwhip lines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(lines.app, name="line")
app.add_typer(processes.db_app, name="db")
app.add_typer(apikeys.app, name="apikey")
messages.register(app)
conversations.register(app)
processes.register(app)


def main() -> None:
    """Entry point of the `outbox` console script."""
    app()
