"""Typed answers of the provider. Provider ids are always `str`: they exceed 2^53."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SendToken:
    """One recipient's message of a message/send."""

    contact: str
    device: str
    fingerprint: str | None
    message: str


@dataclass(frozen=True)
class SmsReceipt:
    """message/send accepted."""

    root: str
    fingerprint: str | None
    tokens: tuple[SendToken, ...]

    @property
    def message_id(self) -> str:
        """The id message/get takes for the (first) recipient."""
        return self.tokens[0].message


@dataclass(frozen=True)
class MmsReceipt:
    """messaging/send accepted."""

    message_id: str
    status: str


@dataclass(frozen=True)
class ProviderMessage:
    """The message object of message/get, message/list, conversation/get and webhooks."""

    id: str
    fingerprint: str | None = None
    address: str | None = None
    source_address: str | None = None
    dest_address: str | None = None
    body: str | None = None
    body_size: int | None = None
    has_attachment: bool = False
    date_created: datetime | None = None
    last_updated: datetime | None = None
    status_code: int | None = None
    status_desc: str | None = None
    message_status: int | None = None
    is_in_final_state: bool = False
    transmission_state: str | None = None
    type: str | None = None  # "ZO" sent from the line, "MO" received
    device_id: str | None = None
    contact_id: str | None = None


@dataclass(frozen=True)
class MessagePage:
    """One page of message/list, newest first."""

    total: int
    size: int
    messages: tuple[ProviderMessage, ...]


@dataclass(frozen=True)
class Conversation:
    """A conversation between the line and one recipient."""

    fingerprint: str | None
    address: str | None = None
    id: str | None = None
    last_message_date: datetime | None = None
    unread_count: int | None = None


@dataclass(frozen=True)
class ConversationPage:
    """conversation/get: the conversation and a page of its messages."""

    conversation: Conversation
    messages: tuple[ProviderMessage, ...]


@dataclass(frozen=True)
class ConversationList:
    """One page of conversation/list."""

    total: int
    size: int
    conversations: tuple[Conversation, ...]


@dataclass(frozen=True)
class Webhook:
    """A registered webhook."""

    webhook_id: str
    type: str
    event: str
    url: str
    method: str


@dataclass(frozen=True)
class Contact:
    """A contact of the line."""

    id: str
    mobile_number: str | None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class ContactPage:
    """One page of contact/list."""

    total: int
    page: int
    pages: int
    contacts: tuple[Contact, ...]
