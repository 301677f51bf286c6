"""What the provider shows: message objects, webhook payloads and conversations, at a given time.

A sent message moves through statusCode 1 (in process) and 2 (queued) to its final code over its
delivery time; the status is computed from the clock when asked, so nothing runs per message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from simulator.numbers import national, ptn
from simulator.state import Login, Message

# The live service wrote dates in its own local time (captures show -07:00 and -08:00).
PROVIDER_ZONE = ZoneInfo("America/Los_Angeles")

STATUS_DESCRIPTIONS = {
    0: "Successful transmission - no acknowledgment from carrier",
    1: "In Process",
    2: "Queued",
    3: "Queued",
    4: "Successful delivery to carrier",
    5: "Failed delivery to carrier",
    6: "Successful delivery to handset (toll-free numbers only)",
    7: "Failed delivery to handset (toll-free numbers only)",
}
FINAL_CODES = frozenset({0, 4, 5, 6, 7})
_TRANSMISSION = {1: "PREPPING", 2: "QUEUED", 3: "QUEUED", 0: "ACCEPTED", 4: "DELIVERED", 6: "DELIVERED"}


def status_at(message: Message, now: float) -> tuple[int, int]:
    """(statusCode, messageStatus) of a message at time `now`."""
    elapsed = now - message.created
    if message.direction == "MO" or elapsed >= message.delivery_s:
        return message.final_code, message.final_status
    if elapsed >= message.delivery_s / 2:
        return 2, 1001
    return 1, 999


def transition_times(message: Message) -> list[float]:
    """When the message's statusCode changes (for progress webhooks)."""
    return [message.created, message.created + message.delivery_s / 2, message.created + message.delivery_s]


def iso(timestamp: float) -> str:
    """ISO-8601 in US Pacific time with its offset, as the provider wrote dates. Milliseconds are
    kept (the captures show whole seconds) so that a client comparing a message's date with the
    moment it sent never sees the message as older than the send."""
    return datetime.fromtimestamp(timestamp, PROVIDER_ZONE).isoformat(timespec="milliseconds")


def _names(contact: dict[str, Any] | None) -> tuple[str | None, str | None]:
    if contact is None:
        return None, None
    return contact.get("firstName"), contact.get("lastName")


def message_object(message: Message, now: float, contact: dict[str, Any] | None) -> dict[str, Any]:
    """The message object of message/get, message/list and conversation/get (id as a string), with
    the names of the line's contact for the other party (null where the contact has none)."""
    code, status = status_at(message, now)
    sent = message.direction == "ZO"
    line, other = ptn(message.line), ptn(message.other)
    first_name, last_name = _names(contact)
    return {
        "id": str(message.id),
        "fingerprint": message.fingerprint,
        "address": other,
        "sourceAddress": national(message.line) if sent else national(message.other),
        "destAddress": national(message.other) if sent else national(message.line),
        "body": message.body,
        "bodySize": len(message.body.encode("utf-8")),
        "hasAttachment": bool(message.files),
        "dateCreated": iso(message.created),
        "lastUpdated": iso(min(now, message.created + message.delivery_s)),
        "statusCode": code,
        "statusDesc": STATUS_DESCRIPTIONS.get(code, ""),
        "messageStatus": status,
        "isInFinalState": code in FINAL_CODES,
        "transmissionState": {"name": _TRANSMISSION.get(code, "ERROR")},
        "type": message.direction,
        "deviceId": message.device_id,
        "contactId": message.contact_id,
        "firstName": first_name,
        "lastName": last_name,
        "mobileNumber": national(message.other),
        "fromName": message.from_name,
        "isRead": message.read,
        "deleted": message.deleted,
        "visible": not message.deleted,
        "channelAddress": line,
    }


def webhook_payload(message: Message, now: float) -> dict[str, Any]:
    """The flat object a webhook receives: no envelope, id as a JSON number."""
    code, status = status_at(message, now)
    sent = message.direction == "ZO"
    final = code in FINAL_CODES
    return {
        "id": message.id,
        "fingerprint": message.fingerprint,
        "body": message.body,
        "bodySize": len(message.body.encode("utf-8")),
        "address": ptn(message.other),
        "finalSource": message.line if sent else message.other,
        "finalDestination": message.other if sent else message.line,
        "messageType": message.direction,
        "statusCode": code,
        "messageStatus": status,
        "hasAttachment": bool(message.files),
        "dateCreated": iso(message.created),
        "dateDelivered": iso(message.created + message.delivery_s) if final and sent else None,
        "deviceId": message.device_id,
        "contactId": message.contact_id,
        "read": message.read,
        "deleted": message.deleted,
        "visible": not message.deleted,
        "cc": None,
        "bcc": None,
        "scheduledDate": None,
        "messageTransport": 5,
    }


def conversation_object(messages: list[Message], contact: dict[str, Any] | None) -> dict[str, Any]:
    """A conversation from its messages (newest first) and the contact of the other party."""
    newest, oldest = messages[0], messages[-1]
    first_name, last_name = _names(contact)
    unread = sum(not m.read for m in messages)
    return {
        "id": newest.fingerprint,
        "fingerprint": newest.fingerprint,
        "address": ptn(newest.other),
        "dateCreated": iso(oldest.created),
        "lastUpdated": iso(newest.created),
        "lastMessageBody": newest.body,
        "lastMessageDate": iso(newest.created),
        "lastContactId": newest.contact_id,
        "lastContactFirstName": first_name,
        "lastContactLastName": last_name,
        "lastContactMobileNumber": national(newest.other),
        "unreadCount": unread,
        "deviceId": newest.device_id,
        "contactId": newest.contact_id,
        "new": unread > 0,
        "deleted": False,
    }


def user_object(login: Login, received: int, sent: int) -> dict[str, Any]:
    """user/get: the logged-in user (named by the login's prefix; the System login has no name)
    on the line's number. The simulator keeps no user settings or groups."""
    name = login.username or ""
    return {
        "user": {
            "firstName": name,
            "lastName": "",
            "fullName": name,
            "mobileNumber": national(login.line),
            "carrier": "Zipwhip",
            "email": "",
            "notes": "",
            "zipcode": "",
            "birthday": "",
            "loc": "",
            "websiteDeviceId": login.device_id,
            "MOCount": received,
            "ZOCount": sent,
        },
        "settings": {},
        "groups": [],
    }
