"""Turning the provider's JSON objects into typed results; anything off-shape is `Malformed`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from worker.zipwhip.results import (
    Contact,
    ContactPage,
    Conversation,
    ConversationList,
    ConversationPage,
    MessagePage,
    MmsReceipt,
    ProviderMessage,
    SendToken,
    SmsReceipt,
    Webhook,
)

T = TypeVar("T")


class Malformed(ValueError):
    """An answer that does not have the contract's shape."""


def provider_id(value: Any, field: str = "id") -> str:
    """An id as a string, whether the JSON had it as a number or a string (never via float)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return value.strip()
    raise Malformed(f"{field} is not an id: {type(value).__name__}")


def _opt_id(value: Any) -> str | None:
    return None if value is None else provider_id(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _when(value: Any) -> datetime | None:
    """A provider date as an aware UTC datetime, whatever offset it was written in (`Z`, `+00:00`,
    the live service's own `-07:00`/`-08:00`); one without an offset is read as UTC. Normalised
    because every time the project keeps or shows is UTC (an inbound text's `received_at` too)."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Malformed(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise Malformed(f"{what} is not a list")
    return value


def _each(values: Any, what: str, parse: Callable[[Any], T]) -> tuple[T, ...]:
    return tuple(parse(v) for v in _list(values, what))


def message(value: Any) -> ProviderMessage:
    """The message object of get/list/conversation (and, with its own names, of webhooks)."""
    obj = _object(value, "message")
    state = obj.get("transmissionState")
    return ProviderMessage(
        id=provider_id(obj.get("id")),
        fingerprint=_opt_str(obj.get("fingerprint")),
        address=_opt_str(obj.get("address")),
        source_address=_opt_str(obj.get("sourceAddress", obj.get("finalSource"))),
        dest_address=_opt_str(obj.get("destAddress", obj.get("finalDestination"))),
        body=_opt_str(obj.get("body")),
        body_size=_opt_int(obj.get("bodySize")),
        has_attachment=bool(obj.get("hasAttachment", False)),
        date_created=_when(obj.get("dateCreated")),
        last_updated=_when(obj.get("lastUpdated", obj.get("dateDelivered"))),
        status_code=_opt_int(obj.get("statusCode")),
        status_desc=_opt_str(obj.get("statusDesc")),
        message_status=_opt_int(obj.get("messageStatus")),
        is_in_final_state=bool(obj.get("isInFinalState", False)),
        transmission_state=_opt_str(state.get("name")) if isinstance(state, Mapping) else _opt_str(state),
        type=_opt_str(obj.get("type", obj.get("messageType"))),
        device_id=_opt_id(obj.get("deviceId")),
        contact_id=_opt_id(obj.get("contactId")),
    )


def sms_receipt(value: Any) -> SmsReceipt:
    """The answer of message/send."""
    obj = _object(value, "response")
    tokens = _each(obj.get("tokens"), "tokens", _token)
    if not tokens:
        raise Malformed("tokens is empty")
    return SmsReceipt(
        root=provider_id(obj.get("root"), "root"), fingerprint=_opt_str(obj.get("fingerprint")), tokens=tokens
    )


def _token(value: Any) -> SendToken:
    obj = _object(value, "token")
    return SendToken(
        contact=provider_id(obj.get("contact"), "contact"),
        device=provider_id(obj.get("device"), "device"),
        fingerprint=_opt_str(obj.get("fingerprint")),
        message=provider_id(obj.get("message"), "message"),
    )


def mms_receipt(value: Any) -> MmsReceipt:
    """The answer of messaging/send (its id is a JSON number)."""
    obj = _object(value, "response")
    return MmsReceipt(message_id=provider_id(obj.get("id")), status=str(obj.get("status", "")))


def message_page(envelope: Mapping[str, Any]) -> MessagePage:
    """message/list: `total` and `size` beside the response list."""
    messages = _each(envelope.get("response"), "response", message)
    return MessagePage(
        total=_opt_int(envelope.get("total")) or len(messages),
        size=_opt_int(envelope.get("size")) or len(messages),
        messages=messages,
    )


def conversation(value: Any) -> Conversation:
    """A conversation object."""
    obj = _object(value, "conversation")
    return Conversation(
        fingerprint=_opt_str(obj.get("fingerprint")),
        address=_opt_str(obj.get("address")),
        id=_opt_id(obj.get("id")),
        last_message_date=_when(obj.get("lastMessageDate")),
        unread_count=_opt_int(obj.get("unreadCount")),
    )


def conversation_page(value: Any) -> ConversationPage:
    """conversation/get."""
    obj = _object(value, "response")
    return ConversationPage(
        conversation(obj.get("conversation")), _each(obj.get("messages"), "messages", message)
    )


def conversation_list(envelope: Mapping[str, Any]) -> ConversationList:
    """conversation/list."""
    items = _each(envelope.get("response"), "response", conversation)
    return ConversationList(
        total=_opt_int(envelope.get("total")) or len(items),
        size=_opt_int(envelope.get("size")) or len(items),
        conversations=items,
    )


def webhooks(value: Any) -> list[Webhook]:
    """webhook/add, list and update all answer an array of hooks."""
    return [_webhook(v) for v in _list(value, "response")]


def _webhook(value: Any) -> Webhook:
    obj = _object(value, "webhook")
    return Webhook(
        webhook_id=provider_id(obj.get("webhookId"), "webhookId"),
        type=str(obj.get("type", "")),
        event=str(obj.get("event", "")),
        url=str(obj.get("url", "")),
        method=str(obj.get("method", "POST")),
    )


def contact(value: Any) -> Contact:
    """A contact object."""
    obj = _object(value, "contact")
    return Contact(
        id=provider_id(obj.get("id", obj.get("contactId"))),
        mobile_number=_opt_str(obj.get("mobileNumber", obj.get("address"))),
        first_name=_opt_str(obj.get("firstName")),
        last_name=_opt_str(obj.get("lastName")),
        email=_opt_str(obj.get("email")),
        notes=_opt_str(obj.get("notes")),
    )


def contact_page(envelope: Mapping[str, Any]) -> ContactPage:
    """contact/list: `total`, `page` and `pages` beside the response list."""
    items = _each(envelope.get("response"), "response", contact)
    return ContactPage(
        total=_opt_int(envelope.get("total")) or len(items),
        page=_opt_int(envelope.get("page")) or 1,
        pages=_opt_int(envelope.get("pages")) or 1,
        contacts=items,
    )


def session_key(value: Any) -> str:
    """user/login's answer: the key itself, `<uuid>:<deviceId>`."""
    if not isinstance(value, str) or ":" not in value:
        raise Malformed("the login answer is not a session key")
    return value
