"""`outbox send`, `outbox status` and `outbox cancel`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from worker.callbacks import notify_final
from worker.cli.common import console, fail, print_json, ready_runtime
from worker.infra.runtime import get_runtime
from worker.planning import PlanningError
from worker.planning.files import FileRefused, read_regular_file
from worker.producer.enqueue import enqueue
from worker.report import message_report
from worker.store.db import transaction
from worker.store.models import utcnow
from worker.store.record import cancel


def register(app: typer.Typer) -> None:
    """Add the message commands to the root command."""
    app.command("send")(send)
    app.command("status")(status)
    app.command("cancel")(cancel_)


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(f"{name}: not an ISO-8601 time: {value!r}")


def _read_body(path: Path) -> str:
    """The text of a --body-file: read as attachments are (a regular file, not a link, no more than
    any message may carry), before anything else is done."""
    try:
        data = read_regular_file(path, get_runtime().limits.request_max_bytes, limit="one request may carry")
        return data.decode("utf-8")
    except FileRefused as error:
        fail(f"--body-file {path}: {error}", code=2)
    except UnicodeDecodeError:
        fail(f"--body-file {path}: not UTF-8 text", code=2)


def send(
    line: str = typer.Option(..., help="The sending line's number."),
    to: str = typer.Option(..., help="The recipient's number."),
    body: str = typer.Option(None, help="The text."),
    body_file: Path = typer.Option(None, help="Read the text from this UTF-8 file."),
    attach: list[Path] = typer.Option([], help="A .jpg, .png, .gif or .txt file (repeatable)."),
    idempotency_key: str = typer.Option(None, help="Sending twice with the same key sends once."),
    send_at: str = typer.Option(None, help="ISO-8601 time to send at (UTC if no offset)."),
    expires_at: str = typer.Option(None, help="ISO-8601 time after which it is rejected, not sent."),
    priority: str = typer.Option(
        "normal", help="high (ahead of everything waiting on the line), normal or bulk (after both)."
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"id": ...}.'),
) -> None:
    """Queue a text; prints the message id."""
    if body is not None and body_file is not None:
        fail("give --body or --body-file, not both")
    if body_file is not None:
        body = _read_body(body_file)
    try:
        message_id = enqueue(
            ready_runtime(),
            line,
            to,
            body,
            [str(path) for path in attach],
            idempotency_key=idempotency_key,
            send_at=_when(send_at, "--send-at"),
            expires_at=_when(expires_at, "--expires-at"),
            priority=priority,
        )
    except PlanningError as error:
        fail(str(error), code=2)
    if as_json:
        print_json({"id": message_id})
    else:
        console.print(message_id)


def status(
    ids: list[int] = typer.Argument(..., help="Message ids."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (a list when several ids are given)."),
) -> None:
    """State, parts and history of messages."""
    runtime = ready_runtime()
    with transaction(runtime.engine) as session:
        reports = [message_report(session, message_id) for message_id in ids]
    missing = [str(i) for i, r in zip(ids, reports, strict=True) if r is None]
    if missing:
        fail(f"no message with id {', '.join(missing)}")
    if as_json:
        print_json(reports[0] if len(reports) == 1 else reports)
        return
    for report in reports:
        assert report is not None
        _print_report(report, runtime.settings.send_max_attempts)


def cancel_(
    ids: list[int] = typer.Argument(..., help="Message ids."),
    as_json: bool = typer.Option(False, "--json", help='Print {"cancelled": [...], "not_cancelled": [...]}.'),
) -> None:
    """Stop messages that have not gone out yet: they end rejected ("cancelled"), and nothing more
    of them is sent. A message already (partly) accepted by the provider cannot be called back."""
    runtime = ready_runtime()
    with transaction(runtime.engine) as session:
        ended = cancel(session, ids, utcnow())
    for message_id in ended:
        notify_final(runtime.settings.outcome_hook, message_id, "rejected")
    rest = [i for i in ids if i not in ended]
    if as_json:
        print_json({"cancelled": ended, "not_cancelled": rest})
        return
    console.print(f"cancelled: {', '.join(map(str, ended)) or 'none'}", highlight=False)
    if rest:
        console.print(f"not cancelled (unknown, already sent or final): {', '.join(map(str, rest))}")


def _print_report(report: dict[str, Any], max_attempts: int) -> None:
    console.print(
        f"[bold]message {report['id']}[/bold]: {report['state']}  ({report['line']} → {report['to']}, "
        f"{report['priority']})",
        highlight=False,
    )
    if report["error"]:
        console.print(
            f"  error: {report['error']['description']} (code {report['error']['code']})", highlight=False
        )
    parts = Table("part", "kind", "state", "provider id", "statusCode", "messageStatus", "attempts", "bytes")
    for part in report["parts"]:
        parts.add_row(
            str(part["position"]),
            part["kind"],
            part["state"],
            part["provider_id"] or "",
            f"{part['status_code']} {part['status_description'] or ''}"
            if part["status_code"] is not None
            else "",
            f"{part['message_status']} {part['message_status_description']}"
            if part["message_status"]
            else "",
            f"{part['attempts']}/{max_attempts}"
            + (f", next {part['next_attempt_at'][11:19]}" if part["next_attempt_at"] else ""),
            str(part["payload_bytes"]),
        )
    console.print(parts)
    history = Table("at", "source", "part", "state", "code", "description")
    for event in report["history"]:
        history.add_row(
            event["at"][11:23],
            event["source"],
            str(event["part"] or ""),
            event["state"],
            str(event["code"] if event["code"] is not None else ""),
            event["description"] or "",
        )
    console.print(history)
