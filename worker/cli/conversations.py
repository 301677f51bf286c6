"""`outbox optouts`, `outbox inbox` and `outbox sync`: what recipients said back."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlmodel import Session

from worker.cli.common import console, fail, print_json, ready_runtime
from worker.inbound.sync import sync_line
from worker.infra.runtime import Runtime
from worker.planning import PlanningError, normalize_number
from worker.store.consent import lift, suppress, suppressed
from worker.store.db import transaction
from worker.store.inbox import newest_texts
from worker.store.lines import line_by_number
from worker.store.models import Line, utcnow
from worker.zipwhip.errors import ProviderError


def register(app: typer.Typer) -> None:
    """Add these commands to the root command."""
    app.command("optouts")(optouts)
    app.command("inbox")(inbox)
    app.command("sync")(sync)


def _line(session: Session, runtime: Runtime, phone: str) -> Line:
    try:
        number = normalize_number(phone, field="line", limits=runtime.limits)
    except PlanningError as error:
        fail(str(error))
    line = line_by_number(session, number)
    if line is None:
        fail(f"unknown line {number}")
    return line


def optouts(
    phone: str = typer.Argument(..., help="The line's phone number."),
    add: str = typer.Option(None, help="Suppress this number (as if it had texted STOP)."),
    remove: str = typer.Option(None, help="Lift the suppression of this number."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The line's suppression list (recipients who texted STOP)."""
    runtime = ready_runtime()
    with transaction(runtime.engine) as session:
        line = _line(session, runtime, phone)
        try:
            if add:
                number = normalize_number(add, field="add", limits=runtime.limits)
                suppress(session, line.id or 0, number, "manual", utcnow(), certain=True)
            if remove:
                number = normalize_number(remove, field="remove", limits=runtime.limits)
                lift(session, line.id or 0, number, "manual", utcnow(), certain=True)
        except PlanningError as error:
            fail(str(error))
        rows = [
            {"number": o.number, "source": o.source, "since": o.changed_at.isoformat()}
            for o in suppressed(session, line.id or 0)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("number", "source", "since", title=f"opted out of {line.phone}")
    for row in rows:
        table.add_row(row["number"], row["source"], row["since"][:19])
    console.print(table)


def inbox(
    phone: str = typer.Argument(..., help="The line's phone number."),
    limit: int = typer.Option(50, help="How many of the newest texts."),
    include_sent: bool = typer.Option(
        False, "--all", help="Also texts the line sent from the provider's own apps (not through us)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Texts the line received, newest first (recorded from webhooks and `outbox sync`)."""
    runtime = ready_runtime()
    directions = ["MO", "ZO"] if include_sent else ["MO"]
    with transaction(runtime.engine) as session:
        line = _line(session, runtime, phone)
        rows = newest_texts(session, line.id or 0, directions, limit)
        found = [
            {
                "id": r.id,
                "direction": "in" if r.direction == "MO" else "out",
                "from": r.other if r.direction == "MO" else line.phone,
                "to": line.phone if r.direction == "MO" else r.other,
                "body": r.body,
                "at": (r.created_at or r.recorded_at).isoformat(),
                "source": r.source,
            }
            for r in rows
        ]
    if as_json:
        print_json(found)
        return
    table = Table("at", "", "from", "to", "text", title=f"texts of {line.phone} not sent through the outbox")
    for row in found:
        arrow = "<-" if row["direction"] == "in" else "->"
        table.add_row(str(row["at"])[:19], arrow, str(row["from"]), str(row["to"]), str(row["body"]))
    console.print(table)


def sync(
    phone: str = typer.Argument(..., help="The line's phone number."),
    max_messages: int = typer.Option(1000, help="Stop after this many messages."),
) -> None:
    """Pull the line's conversations and messages from the provider into the store."""
    runtime = ready_runtime()
    try:
        report = sync_line(runtime, phone, max_messages)
    except (PlanningError, LookupError) as error:
        fail(str(error))
    except ProviderError as error:
        fail(f"the provider refused: {error.description}")
    console.print(
        f"{report.conversations} conversations, {report.messages} messages: {report.new} new, "
        f"{report.ours_updated} of ours updated, {report.contacts_pushed} contacts pushed"
    )
