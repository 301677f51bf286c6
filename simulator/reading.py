"""The methods that read and tidy a line's texts: message/get, list, read, delete and the
conversation methods. Deleted messages leave every list and get; reading marks received texts read.
Both fire the `read` and `delete` webhooks."""

from __future__ import annotations

import time

from starlette.responses import Response

from simulator.context import Call
from simulator.state import Message
from simulator.views import conversation_object, message_object
from simulator.wire import envelope, failure


def page_bounds(call: Call) -> tuple[int, int]:
    """`start` (0 = newest) and `limit` (20 when absent, zero or not a number)."""
    return int_param(call, "start", 0), int_param(call, "limit", 20) or 20


def int_param(call: Call, name: str, default: int) -> int:
    """A non-negative integer parameter; the default when absent or not a number."""
    try:
        return max(0, int(call.params.get(name) or default))
    except ValueError:
        return default


def _shown(call: Call, message: Message, now: float) -> dict[str, object]:
    return message_object(message, now, call.world.contact_of(message))


async def message_get(call: Call) -> Response:
    """message/get: one message object by id."""
    raw = call.params.get("id", "messageId")
    if raw is None:
        return failure("Required Long parameter 'id' is not present")
    message = call.world.own_message(call.login.line, raw)
    if message is None:
        return failure("Message not found")
    return envelope(_shown(call, message, time.time()))


async def message_list(call: Call) -> Response:
    """message/list: the line's messages, newest first, `start`/`limit`."""
    start, limit = page_bounds(call)
    page, total = call.world.newest_page(call.login.line, start, limit)
    now = time.time()
    return envelope([_shown(call, m, now) for m in page], total=total, size=len(page))


def _named_messages(call: Call) -> list[Message] | Response:
    """The messages named by the repeatable `message` parameter, or a failure naming the first id
    that is not the line's (and then nothing changes)."""
    raw_ids = call.params.all("message")
    if not raw_ids:
        return failure("Required Long parameter 'message' is not present")
    messages = []
    for raw in raw_ids:
        message = call.world.own_message(call.login.line, raw.strip())
        if message is None:
            return failure(f"Message not found: {raw.strip()}")
        messages.append(message)
    return messages


def _mark_read(call: Call, messages: list[Message]) -> None:
    for message in messages:
        if not message.read:
            message.read = True
            call.webhooks.message_changed(message, "read")


def _delete(call: Call, messages: list[Message]) -> None:
    call.world.delete(messages)
    for message in messages:
        call.webhooks.message_changed(message, "delete")


async def message_read(call: Call) -> Response:
    """message/read: marks messages read; the live service answered `false`."""
    messages = _named_messages(call)
    if isinstance(messages, Response):
        return messages
    _mark_read(call, messages)
    return envelope(False)


async def message_delete(call: Call) -> Response:
    """message/delete: the messages leave lists and gets; answered like message/read."""
    messages = _named_messages(call)
    if isinstance(messages, Response):
        return messages
    _delete(call, messages)
    return envelope(False)


def _conversations(call: Call) -> dict[str, list[Message]]:
    grouped: dict[str, list[Message]] = {}
    for message in call.world.newest_first(call.login.line):
        grouped.setdefault(message.fingerprint, []).append(message)
    return grouped


def _conversation(call: Call) -> list[Message] | Response:
    """The messages (newest first) of the conversation named by `fingerprint`, or a failure."""
    fingerprint = call.params.get("fingerprint")
    if fingerprint is None:
        return failure("Required String parameter 'fingerprint' is not present")
    messages = _conversations(call).get(fingerprint)
    return messages if messages else failure("Conversation not found")


async def conversation_list(call: Call) -> Response:
    """conversation/list: one entry per other party, most recent first."""
    start, limit = page_bounds(call)
    grouped = list(_conversations(call).values())
    page = grouped[start : start + limit]
    shown = [conversation_object(m, call.world.contact_of(m[0])) for m in page]
    return envelope(shown, total=len(grouped), size=len(page))


async def conversation_get(call: Call) -> Response:
    """conversation/get: a conversation and a page of its messages."""
    messages = _conversation(call)
    if isinstance(messages, Response):
        return messages
    start, limit = page_bounds(call)
    now = time.time()
    return envelope(
        {
            "conversation": conversation_object(messages, call.world.contact_of(messages[0])),
            "messages": [_shown(call, m, now) for m in messages[start : start + limit]],
        }
    )


async def conversation_read(call: Call) -> Response:
    """conversation/read: every text of the conversation read; answers `true`."""
    messages = _conversation(call)
    if isinstance(messages, Response):
        return messages
    _mark_read(call, messages)
    return envelope(True)


async def conversation_delete(call: Call) -> Response:
    """conversation/delete: the conversation's messages leave every list; answers `true`."""
    messages = _conversation(call)
    if isinstance(messages, Response):
        return messages
    _delete(call, messages)
    return envelope(True)
