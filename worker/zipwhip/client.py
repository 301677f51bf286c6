"""The Zipwhip REST client: plain values in, typed results out, every failure a ProviderError.

It speaks the wire contract (docs/provider/zipwhip-api.md): base URL + method path, POST form
bodies with repeated keys for lists, the session as a form field, multipart for messaging/send.
It knows nothing of Celery, the database or the settings object.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
from requests.utils import default_user_agent, get_environ_proxies
from urllib3.util.retry import Retry

from worker.zipwhip import parse
from worker.zipwhip.classify import error_from_exception, unparseable, unwrap
from worker.zipwhip.results import (
    Contact,
    ContactPage,
    ConversationList,
    ConversationPage,
    MessagePage,
    MmsReceipt,
    ProviderMessage,
    SmsReceipt,
    Webhook,
)

T = TypeVar("T")
USER_AGENT = default_user_agent()
Fields = list[tuple[str, str]]


@dataclass(frozen=True)
class ClientConfig:
    """Where the API is and how long to wait for it."""

    base_url: str = "https://api.zipwhip.com/"
    connect_timeout_s: float = 3.05
    read_timeout_s: float = 10.0
    pool_size: int = 64


@dataclass(frozen=True)
class Upload:
    """A file for messaging/send."""

    filename: str
    content_type: str
    data: bytes


def _http_session(base_url: str, pool_size: int) -> requests.Session:
    # Transport retries only for connect failures, where the request never left; a retried read
    # could send a text twice.
    retry = Retry(total=2, connect=2, read=0, status=0, other=0, redirect=0, backoff_factor=0.1)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=retry)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # requests reads the environment (proxies, no_proxy, CA bundle) on every call, about a tenth of a
    # send's CPU; every call goes to one base URL, so read it once here instead.
    session.proxies.update(get_environ_proxies(base_url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session


class ZipwhipClient:
    """One client per process; thread-safe for concurrent calls (requests' pool)."""

    def __init__(self, config: ClientConfig, http: requests.Session | None = None) -> None:
        self._config = config
        self._base = config.base_url if config.base_url.endswith("/") else config.base_url + "/"
        self._http = http or _http_session(self._base, config.pool_size)
        self._adapter = self._http.get_adapter(self._base)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(
        self, method: str, fields: Fields, files: list[tuple[str, Any]] | None = None
    ) -> tuple[Mapping[str, Any], int]:
        """POST the fields as a form (or everything as multipart when there are files); returns the
        envelope of a successful answer and its HTTP status."""
        timeout = (self._config.connect_timeout_s, self._config.read_timeout_s)
        url = self._base + method
        try:
            response = self._adapter.send(
                _prepared(url, fields, files),
                timeout=timeout,
                verify=True if self._http.verify is None else self._http.verify,
                proxies=self._http.proxies,
            )
        except requests.RequestException as error:
            raise error_from_exception(error, method) from None
        return unwrap(response, method), response.status_code

    def _read(self, method: str, parse_answer: Callable[[Any], T], answer: Any, status: int) -> T:
        try:
            return parse_answer(answer)
        except (parse.Malformed, KeyError, TypeError, ValueError) as error:
            raise unparseable(f"answer without the expected shape: {error}", method, status) from None

    def _response(self, method: str, fields: Fields, parse_answer: Callable[[Any], T]) -> T:
        envelope, status = self._call(method, fields)
        return self._read(method, parse_answer, envelope.get("response"), status)

    def _envelope(self, method: str, fields: Fields, parse_answer: Callable[[Mapping[str, Any]], T]) -> T:
        envelope, status = self._call(method, fields)
        return self._read(method, parse_answer, envelope, status)

    # Sessions

    def login(self, username: str, password: str) -> str:
        """Log a line in; returns its session key (it never expires)."""
        return self._response(
            "user/login", [("username", username), ("password", password)], parse.session_key
        )

    def logout(self, session: str) -> None:
        """End a session key."""
        self._call("user/logout", [("session", session)])

    # Sending

    def send_sms(self, session: str, contacts: str | Sequence[str], body: str) -> SmsReceipt:
        """message/send: an SMS to one (or several) recipients."""
        recipients = [contacts] if isinstance(contacts, str) else list(contacts)
        fields = [("session", session), *(("contacts", c) for c in recipients), ("body", body)]
        return self._response("message/send", fields, parse.sms_receipt)

    def send_mms(self, session: str, to: str, body: str | None, files: Sequence[Upload]) -> MmsReceipt:
        """messaging/send: an MMS with up to two files, as multipart."""
        fields = [("session", session), ("to", to)] + ([("body", body)] if body else [])
        names = _part_names(files)
        parts = [(name, (f.filename, f.data, f.content_type)) for name, f in zip(names, files, strict=True)]
        envelope, status = self._call("messaging/send", fields, parts)
        return self._read("messaging/send", parse.mms_receipt, envelope.get("response"), status)

    # Reading

    def get_message(self, session: str, message_id: str) -> ProviderMessage:
        """message/get."""
        return self._response("message/get", [("session", session), ("id", message_id)], parse.message)

    def list_messages(self, session: str, start: int = 0, limit: int = 20) -> MessagePage:
        """message/list, newest first."""
        fields = [("session", session), ("start", str(start)), ("limit", str(limit))]
        return self._envelope("message/list", fields, parse.message_page)

    def get_conversation(
        self, session: str, fingerprint: str, start: int = 0, limit: int = 20
    ) -> ConversationPage:
        """conversation/get: a conversation and a page of its messages."""
        fields = [
            ("session", session),
            ("fingerprint", fingerprint),
            ("start", str(start)),
            ("limit", str(limit)),
        ]
        return self._response("conversation/get", fields, parse.conversation_page)

    def list_conversations(self, session: str, start: int = 0, limit: int = 20) -> ConversationList:
        """conversation/list."""
        fields = [("session", session), ("start", str(start)), ("limit", str(limit))]
        return self._envelope("conversation/list", fields, parse.conversation_list)

    # Webhooks

    def add_webhook(
        self, session: str, type: str, event: str, url: str, method: str = "POST"
    ) -> list[Webhook]:
        """webhook/add; answers every hook of that kind."""
        fields = [("session", session), ("type", type), ("event", event), ("url", url), ("method", method)]
        return self._response("webhook/add", fields, parse.webhooks)

    def list_webhooks(self, session: str) -> list[Webhook]:
        """webhook/list."""
        return self._response("webhook/list", [("session", session)], parse.webhooks)

    def update_webhook(self, session: str, webhook_id: str, url: str, method: str = "POST") -> list[Webhook]:
        """webhook/update."""
        fields = [("session", session), ("webhookId", webhook_id), ("url", url), ("method", method)]
        return self._response("webhook/update", fields, parse.webhooks)

    def delete_webhook(self, session: str, webhook_id: str) -> None:
        """webhook/delete."""
        self._call("webhook/delete", [("session", session), ("webhookId", webhook_id)])

    # Contacts

    def save_contact(self, session: str, mobile_number: str, **fields: str) -> Contact:
        """contact/save (firstName, lastName, email, notes, ...)."""
        form = [("session", session), ("mobileNumber", mobile_number), *fields.items()]
        return self._response("contact/save", form, parse.contact)

    def list_contacts(self, session: str, page: int = 1, page_size: int = 20) -> ContactPage:
        """contact/list."""
        fields = [("session", session), ("page", str(page)), ("pageSize", str(page_size))]
        return self._envelope("contact/list", fields, parse.contact_page)


def _prepared(url: str, fields: Fields, files: list[tuple[str, Any]] | None) -> requests.PreparedRequest:
    """The request to POST, built directly: going through `Session.post` (settings merged, cookies,
    hooks, the environment read) cost a send more CPU than the rest of the pipeline does; every call
    goes to one base URL whose proxies and CA bundle the session read once."""
    request = requests.PreparedRequest()
    if files is not None:  # (None, value) makes requests send a plain multipart field
        request.prepare(
            method="POST", url=url, files=[(name, (None, value)) for name, value in fields] + files
        )
        return request
    body = urlencode(fields)
    request.method, request.url, request.body = "POST", url, body
    request.headers = CaseInsensitiveDict(
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(body)),
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
        }
    )
    request.hooks = default_hooks()
    return request


def _part_names(files: Sequence[Upload]) -> list[str]:
    """Images as image1/image2, text attachments as file/file2 (the names real clients used)."""
    names, images, texts = [], 0, 0
    for upload in files:
        if upload.content_type == "text/plain":
            texts += 1
            names.append("file" if texts == 1 else f"file{texts}")
        else:
            images += 1
            names.append(f"image{images}")
    return names
