"""The /v1 routes: each authenticates its key, counts its rate, reads the request and calls the
producer (`enqueue_checked`, the code behind `send_message` and `send_messages`) or the readers.

Errors are one shape, `{"error": {"code", "message", "problems": [{"field", "message"}]}}`: 400 a body
that is not JSON, 401 a missing, unknown or revoked key, 403 a line the key may not use, 404 a message
it may not see, 409 an idempotency key reused for another request, 413 a body over the cap, 415 a body
neither JSON nor a form, 422 a request that names its problems, 429 past the key's rate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.api.callback_url import networks
from worker.api.keys import Caller, authenticate
from worker.api.rate import over_limit
from worker.infra.runtime import Runtime
from worker.planning import FileInput, IdempotencyConflict, PlanningError, Problem, normalize_number
from worker.producer.enqueue import TextRequest, enqueue_checked
from worker.store.models import utcnow
from worker.store.states import State
from worker.web.body import BadJson, BodyTooLarge, loads_strict, read_capped
from worker.web.v1 import views
from worker.web.v1.openapi import openapi_document
from worker.web.v1.reading import MAX_FILES, Context, form_to_message, read_batch, read_message

log = logging.getLogger(__name__)
Handler = Callable[[Request, Caller], Awaitable[Response]]


def error(
    status: int,
    code: str,
    message: str,
    problems: Sequence[Problem] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The one error shape of the API."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "problems": [{"field": p.field, "message": p.message} for p in problems],
        }
    }
    return JSONResponse(body, status, headers=headers)


def api_routes(runtime: Runtime) -> list[Route]:
    """The /v1 routes, bound to a runtime."""
    api = _Api(runtime)
    document = openapi_document()

    async def openapi(_: Request) -> JSONResponse:
        return JSONResponse(document)

    return [
        Route("/v1/openapi.json", openapi, methods=["GET"]),
        Route("/v1/messages", api.guarded(api.create), methods=["POST"], name="create"),
        Route("/v1/messages", api.guarded(api.list_), methods=["GET"], name="list"),
        Route("/v1/messages:batch", api.guarded(api.batch), methods=["POST"]),
        Route("/v1/messages/{message_id}", api.guarded(api.show), methods=["GET"]),
    ]


class _Api:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.private = networks(self.settings.callback_private_networks)

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The handler behind the key check and the key's rate limit."""

        async def endpoint(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            caller = await run_in_threadpool(authenticate, self.runtime.engine, header)
            if caller is None:
                return error(
                    401,
                    "unauthorized",
                    "send Authorization: Bearer <API key> with a live key",
                    headers={"WWW-Authenticate": 'Bearer realm="outbox"'},
                )
            wait = await run_in_threadpool(self._over_limit, caller)
            if wait is not None:
                return error(
                    429,
                    "rate_limited",
                    f"over {self.settings.api_requests_per_s:g} requests a second",
                    headers={"Retry-After": str(math.ceil(wait))},
                )
            return await handler(request, caller)

        return endpoint

    def _over_limit(self, caller: Caller) -> float | None:
        try:
            return over_limit(self.runtime.redis, caller.key_id, self.settings.api_requests_per_s)
        except Exception:  # Redis away: the limit is a guard rail, not a reason to stop sending
            log.warning("API rate limit not checked: Redis unavailable")
            return None

    async def create(self, request: Request, caller: Caller) -> Response:
        started = utcnow()
        item = await self._read(request, form_allowed=True)
        if isinstance(item, Response):
            return item
        key = request.headers.get("idempotency-key")
        problems: list[Problem] = []
        text = read_message(item, self._context(caller), key, problems)
        refused = self._out_of_scope(caller, [text], indexed=False)
        if refused is not None:
            return refused
        ids = await self._enqueue([text], problems, indexed=False)
        if isinstance(ids, Response):
            return ids
        view = await run_in_threadpool(views.message_view, self.runtime.engine, ids[0], caller.lines)
        replay = key is not None and await run_in_threadpool(
            views.created_before, self.runtime.engine, ids[0], started
        )
        return JSONResponse(view, 200 if replay else 201, headers={"Location": f"/v1/messages/{ids[0]}"})

    async def batch(self, request: Request, caller: Caller) -> Response:
        started = utcnow()
        body = await self._read(request, form_allowed=False)
        if isinstance(body, Response):
            return body
        key = request.headers.get("idempotency-key")
        problems: list[Problem] = []
        texts = read_batch(body, self._context(caller), key, problems)
        refused = self._out_of_scope(caller, texts, indexed=True)
        if refused is not None:
            return refused
        if not texts:
            return error(422, "invalid_request", "invalid messages", problems)
        ids = await self._enqueue(texts, problems, indexed=True)
        if isinstance(ids, Response):
            return ids
        answer = await run_in_threadpool(views.states, self.runtime.engine, ids)
        replay = key is not None and await run_in_threadpool(
            views.created_before, self.runtime.engine, max(ids), started
        )
        return JSONResponse({"messages": answer}, 200 if replay else 201)

    async def show(self, request: Request, caller: Caller) -> Response:
        raw = request.path_params["message_id"]
        message_id = int(raw) if raw.isdigit() and len(raw) < 19 else None
        view = (
            await run_in_threadpool(views.message_view, self.runtime.engine, message_id, caller.lines)
            if message_id is not None
            else None
        )
        if view is None:
            return error(404, "not_found", "no such message")
        return JSONResponse(view)

    async def list_(self, request: Request, caller: Caller) -> Response:
        query, problems = request.query_params, []
        unknown = sorted(set(query) - {"line", "state", "since", "cursor", "limit"})
        problems += [Problem(name, "unknown query parameter") for name in unknown]
        line = self._line(query.get("line"), problems)
        state = query.get("state")
        if state is not None and state not in {s.value for s in State}:
            problems.append(Problem("state", f"must be one of {', '.join(s.value for s in State)}"))
        since = _since(query.get("since"), problems)
        after_id = _whole(query.get("cursor"), "cursor", 0, 2**62, problems, default=0)
        limit = _whole(query.get("limit"), "limit", 1, views.PAGE_MAX, problems, default=views.PAGE_DEFAULT)
        if problems:
            return error(422, "invalid_request", "invalid query", problems)
        if line is not None and not caller.may_use(line):
            return error(403, "forbidden", "this key may not read that line", [Problem("line", line)])
        page = await run_in_threadpool(
            views.page,
            self.runtime.engine,
            caller.lines,
            line=line,
            state=state,
            since=since,
            after_id=after_id,
            limit=limit,
        )
        return JSONResponse(page)

    def _context(self, caller: Caller) -> Context:
        return Context(caller.key_id, self.private)

    def _line(self, raw: str | None, problems: list[Problem]) -> str | None:
        if raw is None:
            return None
        try:
            return normalize_number(raw, field="line", limits=self.runtime.limits)
        except PlanningError as found:
            problems += found.problems
            return None

    def _out_of_scope(
        self, caller: Caller, texts: Sequence[TextRequest | None], indexed: bool
    ) -> Response | None:
        """403 naming each message whose line this key may not send from (before anything else)."""
        if caller.lines is None:
            return None
        refused = []
        for n, text in enumerate(texts):
            line = self._line(text.line, []) if text is not None and isinstance(text.line, str) else None
            if line is not None and not caller.may_use(line):
                refused.append(
                    Problem(
                        f"messages[{n}].line" if indexed else "line", f"this key may not send from {line}"
                    )
                )
        return error(403, "forbidden", "line not allowed for this key", refused) if refused else None

    async def _enqueue(
        self, texts: list[TextRequest | None], problems: list[Problem], indexed: bool
    ) -> list[int] | Response:
        try:
            return await run_in_threadpool(
                enqueue_checked, self.runtime.ready(), texts, problems, indexed=indexed
            )
        except IdempotencyConflict as conflict:
            return error(
                409,
                "idempotency_conflict",
                "an idempotency key was reused for another request",
                conflict.problems,
            )
        except PlanningError as invalid:
            return error(422, "invalid_request", "the request names problems", invalid.problems)

    async def _read(self, request: Request, form_allowed: bool) -> Any:
        """The body as a JSON value (or a form as its JSON object), or the error response."""
        limit = self.settings.api_max_request_bytes
        try:
            raw = await read_capped(request, limit)
        except BodyTooLarge:
            return error(413, "too_large", f"the request body is over {limit:,} bytes")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                return loads_strict(raw)
            except BadJson as bad:
                return error(400, "bad_json", str(bad))
        if kind == "multipart/form-data" and form_allowed:
            return await _form(request, raw)
        allowed = "application/json" + (" or multipart/form-data" if form_allowed else "")
        return error(415, "unsupported_media_type", f"send {allowed}")


async def _form(request: Request, raw: bytes) -> Any:
    """A multipart form read from the body already read (and capped): fields and uploaded files."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    replay = Request(request.scope, receive)
    try:
        form = await replay.form(max_files=MAX_FILES + 1, max_fields=50)
    except HTTPException as bad:
        return error(400, "bad_form", str(bad.detail))
    fields: dict[str, str] = {}
    files: list[FileInput] = []
    problems: list[Problem] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != "attachments":
                problems.append(Problem(name, "only files named attachments are taken"))
                continue
            files.append(FileInput(name=value.filename or "", data=await value.read()))
        elif name in fields:
            problems.append(Problem(name, "given twice"))
        else:
            fields[name] = value
    await form.close()
    item = form_to_message(fields, files, problems)
    if problems:
        return error(422, "invalid_request", "invalid form", problems)
    return item


def _since(raw: str | None, problems: list[Problem]) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        problems.append(Problem("since", "must be an RFC 3339 date-time"))
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)
    except (OverflowError, ValueError):
        problems.append(Problem("since", "is out of range"))
        return None


def _whole(raw: str | None, name: str, low: int, high: int, problems: list[Problem], default: int) -> int:
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        problems.append(Problem(name, f"must be a whole number from {low} to {high}"))
        return default
    return int(raw)
