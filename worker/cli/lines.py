"""`outbox line ...`: log lines in, list them."""

from __future__ import annotations

import csv
from pathlib import Path

import typer
from rich.table import Table

from worker.cli.common import console, fail, print_json, ready_runtime
from worker.inbound.webhooks import register_webhooks
from worker.infra.runtime import Runtime
from worker.lines import LineLogin, list_lines, login_line, login_lines, set_rates
from worker.planning import PlanningError, normalize_number
from worker.zipwhip.errors import ProviderError

app = typer.Typer(help="Texting lines: log in (one, or many from a file), list.", no_args_is_help=True)


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


IMPORT_COLUMNS = ("phone", "username", "password")


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="A CSV file with a header: phone,username,password."),
    concurrency: int = typer.Option(16, help="Logins in flight at once."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list, a result per line."),
) -> None:
    """Log many lines in from a CSV file (concurrently); prints a result per line, never a password.

    An empty username logs in with the line's number. Exits 1 if any line failed (the others are
    logged in all the same)."""
    logins = _read_logins(file)
    runtime = ready_runtime()
    results = login_lines(runtime, logins, concurrency)
    rows = [{"phone": r.phone, "username": r.username, "result": r.error or "logged in"} for r in results]
    if as_json:
        print_json(rows)
    else:
        table = Table("line", "username", "result")
        for row in rows:
            table.add_row(str(row["phone"]), str(row["username"] or ""), str(row["result"]))
        console.print(table)
        console.print(f"{sum(r.error is None for r in results)} of {len(results)} lines logged in")
    if any(r.error for r in results):
        raise typer.Exit(1)


def _read_logins(file: Path) -> list[LineLogin]:
    """The CSV's rows; a file that is not one names the problem (and its row), never a password."""
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in IMPORT_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                fail(
                    f"{file}: the header must name {', '.join(IMPORT_COLUMNS)}; missing {', '.join(missing)}"
                )
            logins = []
            for number, row in enumerate(reader, start=2):
                phone, password = (row.get("phone") or "").strip(), row.get("password") or ""
                if not phone or not password:
                    fail(f"{file}, row {number}: a phone and a password are needed")
                logins.append(LineLogin(phone, (row.get("username") or "").strip() or None, password))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        fail(f"{file}: {error}")
    if not logins:
        fail(f"{file}: no lines in it")
    return logins


@app.command("rate")
def rate(
    phone: str = typer.Argument(..., help="The line's phone number."),
    per_second: float = typer.Option(None, help="Texts a second across all hosts (0: unlimited)."),
    default: bool = typer.Option(False, "--default", help="Back to the OUTBOX_LINE_RATE setting."),
) -> None:
    """Set a line's own send rate (carriers allow about 1/s for a business line, 3/s toll-free)."""
    if (per_second is None) == (not default):
        fail("give --per-second R or --default")
    try:
        changed = set_rates(ready_runtime(), [phone], None if default else per_second)
    except PlanningError as error:
        fail(str(error))
    if not changed:
        fail(f"unknown line {phone}")
    console.print(f"line {phone}: {'the default rate' if default else f'{per_second:g} texts a second'}")


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


@app.command("webhooks")
def webhooks(
    phone: str = typer.Argument(..., help="The line's phone number."),
    public_url: str = typer.Option(
        ..., help="Where the provider reaches the web process, e.g. https://outbox.example.com"
    ),
    username: str = typer.Option(None, help="An Admin or System login to register with (Operators may not)."),
    password: str = typer.Option(
        None, envvar="OUTBOX_LINE_PASSWORD", help="Its password; used once, never stored."
    ),
) -> None:
    """Register the webhooks (progress, send, receive, opt-out) for a line; safe to run again."""
    runtime = ready_runtime()
    if username and not password:
        password = typer.prompt(f"password for {username}", hide_input=True)
    try:
        number = normalize_number(phone, field="line", limits=runtime.limits)
        key = (
            runtime.client.login(username, password)
            if username and password
            else _session_of(runtime, number)
        )
        hooks = register_webhooks(runtime, key, number, public_url)
        if username and password:
            runtime.client.logout(key)
    except (PlanningError, ValueError, LookupError) as error:
        fail(str(error))
    except ProviderError as error:
        fail(f"the provider refused: {error.description}")
    for hook in hooks:
        console.print(
            f"{hook.type}/{hook.event} -> {hook.url.split('/hooks/')[0]}/hooks/...", highlight=False
        )


def _session_of(runtime: Runtime, number: str) -> str:
    for line in list_lines(runtime):
        if line.phone == number and line.session_key:
            return line.session_key
    raise LookupError(f"line {number} is not logged in: run `outbox line add` first")
