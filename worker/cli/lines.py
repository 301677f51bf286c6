"""`outbox line ...`: log lines in, list them."""

from __future__ import annotations

import typer
from rich.table import Table

from worker.cli.common import console, fail, print_json, ready_runtime
from worker.lines import list_lines, login_line
from worker.planning import PlanningError
from worker.zipwhip.errors import ProviderError

app = typer.Typer(help="Texting lines: log in, list.", no_args_is_help=True)


@app.command("add")
def add(
    phone: str = typer.Argument(..., help="The line's phone number, e.g. 5556661234."),
    username: str = typer.Option(None, help="Login name: the number, or prefix@number for a user."),
    password: str = typer.Option(
        ...,
        prompt=True,
        hide_input=True,
        envvar="OUTBOX_LINE_PASSWORD",
        help="Used once to log in; never stored.",
    ),
) -> None:
    """Log a line in (again) and store its session key; its waiting messages go out."""
    runtime = ready_runtime()
    try:
        line = login_line(runtime, phone, username, password)
    except PlanningError as error:
        fail(str(error))
    except ProviderError as error:
        fail(f"login failed for {phone}: {error.description}")
    console.print(f"line {line.phone} logged in as {line.username}: active", highlight=False)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every line and its state (never its session key)."""
    rows = [
        {"phone": line.phone, "username": line.username, "state": line.state, "rate_per_s": line.rate_per_s}
        for line in list_lines(ready_runtime())
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("line", "username", "state", "rate/s")
    for row in rows:
        table.add_row(
            str(row["phone"]), str(row["username"]), str(row["state"]), str(row["rate_per_s"] or "default")
        )
    console.print(table)
