"""`outbox apikey create|list|revoke`: keys of the HTTP API."""

from __future__ import annotations

import typer
from rich.table import Table

from worker.api.keys import create_key, list_keys, revoke_key
from worker.cli.common import console, fail, print_json, ready_runtime
from worker.planning import PlanningError, normalize_number

app = typer.Typer(help="Keys of the HTTP API (/v1): create, list, revoke.", no_args_is_help=True)


@app.command("create")
def create(
    line: list[str] = typer.Option(
        [], "--line", help="Scope the key to this line (repeatable); none: every line."
    ),
    name: str = typer.Option(None, help="A name to know it by in `outbox apikey list`."),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"id": ..., "key": "...", "signing_secret": "..."}.'
    ),
) -> None:
    """Make a key; prints it once (only its hash is kept), with the secret that signs its callbacks."""
    runtime = ready_runtime()
    try:
        lines = [normalize_number(raw, field="line", limits=runtime.limits) for raw in line]
    except PlanningError as error:
        fail("--" + str(error.problems[0]))
    made = create_key(runtime.engine, lines, name)
    if as_json:
        print_json({"id": made.id, "key": made.key, "signing_secret": made.signing_secret})
        return
    console.print(f"key {made.id}" + (f" for {', '.join(lines)}" if lines else " for every line"))
    console.print(f"key:            {made.key}", highlight=False)
    console.print(f"signing secret: {made.signing_secret}", highlight=False)
    console.print("Keep both now: they are not shown again.")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print a JSON list.")) -> None:
    """Every key (never its secret), live and revoked."""
    keys = list_keys(ready_runtime().engine)
    if as_json:
        print_json(keys)
        return
    table = Table("id", "name", "lines", "created", "revoked")
    for k in keys:
        lines = k["lines"]
        table.add_row(
            str(k["id"]),
            str(k["name"] or ""),
            ", ".join(lines) if isinstance(lines, list) else "all",
            str(k["created_at"]),
            str(k["revoked_at"] or ""),
        )
    console.print(table)


@app.command("revoke")
def revoke(key_id: int = typer.Argument(..., help="The key's id (from `outbox apikey list`).")) -> None:
    """Revoke a key: its next request is refused (401)."""
    if not revoke_key(ready_runtime().engine, key_id):
        fail(f"no live key {key_id}")
    console.print(f"key {key_id} revoked")
