"""The Zipwhip methods other than sending and reading: sessions, the user, webhooks, contacts; and
the table of every method served.

Each handler takes a `Call` and returns the provider's answer. Rights as the seed describes them:
an Operator may only send and receive; Admin and System may do everything.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from starlette.responses import Response

from simulator import reading
from simulator.context import Call
from simulator.numbers import e164, ptn
from simulator.reading import int_param
from simulator.sending import message_send, messaging_send
from simulator.state import Hook
from simulator.views import user_object
from simulator.wire import envelope, failure

Handler = Callable[[Call], Awaitable[Response]]
HOOK_EVENTS = {"message": {"receive", "send", "progress", "read", "delete"}, "optout": {"change"}}


async def logout(call: Call) -> Response:
    """user/logout: the session key stops working."""
    call.world.sessions.pop(call.params.get("session") or "", None)
    return envelope(None)


async def user_get(call: Call) -> Response:
    """user/get: the logged-in user's profile on the line's number."""
    messages = call.world.newest_first(call.login.line)
    received = sum(m.direction == "MO" for m in messages)
    return envelope(user_object(call.login, received, len(messages) - received))


def _line_hooks(call: Call, type_: str | None = None, event: str | None = None) -> list[Hook]:
    return [
        h
        for h in call.world.hooks.values()
        if h.line == call.login.line
        and (type_ is None or h.type == type_)
        and (event is None or h.event == event)
    ]


async def webhook_add(call: Call) -> Response:
    """webhook/add: answers an array of the line's hooks for that type and event."""
    type_, event, url = call.params.get("type"), call.params.get("event"), call.params.get("url")
    if not type_ or not event or not url:
        return failure("Required parameters: type, event, url")
    if event not in HOOK_EVENTS.get(type_, set()):
        return failure(f"Invalid event {event!r} for type {type_!r}")
    call.world.next_hook += 1
    hook = Hook(
        call.world.next_hook,
        call.login.line,
        type_,
        event,
        url,
        (call.params.get("method") or "POST").upper(),
    )
    call.world.hooks[hook.id] = hook
    return envelope([h.as_json() for h in _line_hooks(call, type_, event)])


async def webhook_list(call: Call) -> Response:
    """webhook/list: every hook of the line."""
    return envelope([h.as_json() for h in _line_hooks(call)])


def _own_hook(call: Call) -> Hook | None:
    try:
        hook = call.world.hooks.get(int(call.params.get("webhookId") or ""))
    except ValueError:
        return None
    return hook if hook and hook.line == call.login.line else None


async def webhook_update(call: Call) -> Response:
    """webhook/update: a new URL (and method) for a hook."""
    hook = _own_hook(call)
    if hook is None:
        return failure("Webhook not found")
    hook.url = call.params.get("url") or hook.url
    hook.method = (call.params.get("method") or hook.method).upper()
    return envelope([hook.as_json()])


async def webhook_delete(call: Call) -> Response:
    """webhook/delete: answers an empty array."""
    hook = _own_hook(call)
    if hook is None:
        return failure("Webhook not found")
    del call.world.hooks[hook.id]
    return envelope([])


def _contact_json(contact: dict[str, object]) -> dict[str, object]:
    number = str(contact.get("mobileNumber") or "")
    return {**contact, "address": ptn(number) if number else None}


async def contact_save(call: Call) -> Response:
    """contact/save: create or update by number."""
    raw = call.params.get("mobileNumber", "address")
    number = e164(raw) if raw else None
    if number is None:
        return failure("Required String parameter 'mobileNumber' is not present")
    contact_id = call.world.contact_for(call.login.line, number)
    contact = call.world.contacts[call.login.line][contact_id]
    for field in ("firstName", "lastName", "email", "notes", "city", "state", "zipcode", "birthday"):
        value = call.params.get(field)
        if value is not None:
            contact[field] = value
    return envelope(_contact_json(contact))


async def contact_list(call: Call) -> Response:
    """contact/list: `page` (from 1) and `pageSize`; answers `total`, `page`, `pages`."""
    contacts = list(call.world.contacts.get(call.login.line, {}).values())
    page, size = max(1, int_param(call, "page", 1)), int_param(call, "pageSize", 20) or 20
    chunk = contacts[(page - 1) * size : page * size]
    pages = max(1, math.ceil(len(contacts) / size))
    return envelope([_contact_json(c) for c in chunk], total=len(contacts), page=page, pages=pages)


def _own_contact(call: Call) -> dict[str, object] | None:
    contacts = call.world.contacts.get(call.login.line, {})
    try:
        return contacts.get(int(call.params.get("contact", "id") or ""))
    except ValueError:
        number = e164(call.params.get("mobileNumber") or "")
        return next((c for c in contacts.values() if c.get("mobileNumber") == number), None)


async def contact_get(call: Call) -> Response:
    """contact/get: by `contact` id or `mobileNumber`."""
    contact = _own_contact(call)
    return envelope(_contact_json(contact)) if contact else failure("Contact not found")


async def contact_delete(call: Call) -> Response:
    """contact/delete: `contact=<id>`."""
    contact = _own_contact(call)
    if contact is None:
        return failure("Contact not found")
    del call.world.contacts[call.login.line][int(str(contact["id"]))]
    return envelope(None)


# Operators may only send and receive messages (reading and marking them read included); these
# need Admin or System.
ADMIN_ONLY = frozenset(
    {"message/delete", "conversation/delete"}
    | {"webhook/add", "webhook/list", "webhook/update", "webhook/delete"}
    | {"contact/save", "contact/list", "contact/get", "contact/delete"}
)
HANDLERS: dict[str, Handler] = {
    "user/logout": logout,
    "user/get": user_get,
    "message/send": message_send,
    "messaging/send": messaging_send,
    "message/get": reading.message_get,
    "message/list": reading.message_list,
    "message/read": reading.message_read,
    "message/delete": reading.message_delete,
    "conversation/get": reading.conversation_get,
    "conversation/list": reading.conversation_list,
    "conversation/read": reading.conversation_read,
    "conversation/delete": reading.conversation_delete,
    "webhook/add": webhook_add,
    "webhook/list": webhook_list,
    "webhook/update": webhook_update,
    "webhook/delete": webhook_delete,
    "contact/save": contact_save,
    "contact/list": contact_list,
    "contact/get": contact_get,
    "contact/delete": contact_delete,
}
