"""The OpenAPI document of /v1, served at /v1/openapi.json and checked in at docs/api/openapi.json
(`python -m worker.web.v1.openapi > docs/api/openapi.json`; a test keeps the two equal)."""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

from worker.store.states import State

NULLABLE_STRING = {"type": "string", "nullable": True}
NULLABLE_INT = {"type": "integer", "nullable": True}
DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_DATE_TIME = {**DATE_TIME, "nullable": True}
STATES = [s.value for s in State]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, **headers: str) -> dict[str, Any]:
    answer = _json(_ref("Error"), description)
    if headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
        }
    return answer


_MESSAGE_FIELDS: dict[str, Any] = {
    "line": {
        "type": "string",
        "description": "The sending line's number (a line added with `outbox line add`).",
        "example": "5556661234",
    },
    "to": {"type": "string", "description": "The recipient's number.", "example": "+12065551234"},
    "body": {
        "type": "string",
        "nullable": True,
        "description": "The text; longer than one SMS, it is sent as an MMS with a .txt file.",
    },
    "attachments": {
        "type": "array",
        "maxItems": 20,
        "description": ".jpg, .png, .gif or .txt files, each as base64; or upload them in a multipart form.",
        "items": _ref("Attachment"),
    },
    "priority": {"type": "string", "enum": ["high", "normal", "bulk"], "default": "normal"},
    "send_at": {
        **NULLABLE_DATE_TIME,
        "description": "Send at this time (RFC 3339; without an offset, UTC), within a year.",
    },
    "expires_at": {**NULLABLE_DATE_TIME, "description": "Not sent after this time: it ends rejected."},
    "metadata": {
        "type": "object",
        "nullable": True,
        "description": "Plain JSON of your own, at most 16 KB; kept with the message.",
    },
    "status_callback": {
        "type": "string",
        "format": "uri",
        "nullable": True,
        "description": "An http(s) URL to POST signed state changes to.",
    },
    "status_callback_events": {
        "type": "string",
        "enum": ["all", "final"],
        "nullable": True,
        "description": "Every state change, or the final one only (the default).",
    },
}

_SCHEMAS: dict[str, Any] = {
    "Attachment": {
        "type": "object",
        "required": ["filename", "content_base64"],
        "additionalProperties": False,
        "properties": {
            "filename": {"type": "string", "minLength": 1, "example": "map.png"},
            "content_base64": {"type": "string", "format": "byte"},
        },
    },
    "NewMessage": {
        "type": "object",
        "required": ["line", "to"],
        "additionalProperties": False,
        "properties": _MESSAGE_FIELDS,
    },
    "NewMessageForm": {
        "type": "object",
        "required": ["line", "to"],
        "description": "The same fields as form fields (metadata as JSON text); files as parts named "
        "attachments.",
        "properties": {
            **{k: {"type": "string"} for k in _MESSAGE_FIELDS if k not in ("attachments",)},
            "attachments": {"type": "array", "items": {"type": "string", "format": "binary"}},
        },
    },
    "BatchMessage": {
        "type": "object",
        "required": ["line", "to"],
        "additionalProperties": False,
        "properties": {
            **_MESSAGE_FIELDS,
            "idempotency_key": {"type": "string", "nullable": True, "minLength": 1, "maxLength": 200},
        },
    },
    "Batch": {
        "type": "object",
        "required": ["messages"],
        "additionalProperties": False,
        "properties": {
            "messages": {"type": "array", "minItems": 1, "maxItems": 10000, "items": _ref("BatchMessage")}
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "problems"],
                "properties": {
                    "code": {"type": "string", "example": "invalid_request"},
                    "message": {"type": "string"},
                    "problems": {
                        "type": "array",
                        "description": "Each problem with its field (`messages[3].to` in a batch).",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                        },
                    },
                },
            }
        },
    },
    "Part": {
        "type": "object",
        "required": ["position", "kind", "state"],
        "properties": {
            "position": {"type": "integer"},
            "kind": {"type": "string", "enum": ["sms", "mms"]},
            "state": {"type": "string", "enum": STATES},
            "provider_id": NULLABLE_STRING,
            "status_code": NULLABLE_INT,
            "status_description": NULLABLE_STRING,
            "message_status": NULLABLE_INT,
            "message_status_description": NULLABLE_STRING,
            "attempts": {"type": "integer"},
            "next_attempt_at": NULLABLE_DATE_TIME,
            "body_bytes": {"type": "integer"},
            "payload_bytes": {"type": "integer"},
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"type": "string"},
                        "bytes": {"type": "integer"},
                        "from_body": {"type": "boolean"},
                    },
                },
            },
            "sent_at": NULLABLE_DATE_TIME,
            "final_at": NULLABLE_DATE_TIME,
            "error": {"type": "object", "nullable": True},
        },
    },
    "Event": {
        "type": "object",
        "required": ["at", "source", "state"],
        "properties": {
            "at": DATE_TIME,
            "source": {"type": "string"},
            "part": NULLABLE_INT,
            "state": {"type": "string", "enum": STATES},
            "code": NULLABLE_INT,
            "status_code": NULLABLE_INT,
            "message_status": NULLABLE_INT,
            "description": NULLABLE_STRING,
        },
    },
    "Message": {
        "type": "object",
        "required": ["id", "state", "line", "to", "parts", "history"],
        "properties": {
            "id": {"type": "integer"},
            "state": {
                "type": "string",
                "enum": STATES,
                "description": "queued, sending, sent, retrying, unknown; final: delivered, failed, "
                "rejected.",
            },
            "priority": {"type": "string", "enum": ["high", "normal", "bulk"]},
            "line": {"type": "string"},
            "to": {"type": "string"},
            "created_at": DATE_TIME,
            "send_at": NULLABLE_DATE_TIME,
            "expires_at": NULLABLE_DATE_TIME,
            "final_at": NULLABLE_DATE_TIME,
            "error": {
                "type": "object",
                "nullable": True,
                "properties": {"code": NULLABLE_INT, "description": NULLABLE_STRING},
            },
            "metadata": {"type": "object", "nullable": True},
            "status_callback": {
                "type": "object",
                "nullable": True,
                "properties": {
                    "url": {"type": "string"},
                    "events": {"type": "string", "enum": ["all", "final"]},
                },
            },
            "parts": {"type": "array", "items": _ref("Part")},
            "history": {"type": "array", "items": _ref("Event")},
        },
    },
    "MessageSummary": {
        "type": "object",
        "required": ["id", "state", "line", "to"],
        "properties": {
            "id": {"type": "integer"},
            "state": {"type": "string", "enum": STATES},
            "priority": {"type": "string", "enum": ["high", "normal", "bulk"]},
            "line": {"type": "string"},
            "to": {"type": "string"},
            "created_at": DATE_TIME,
            "send_at": NULLABLE_DATE_TIME,
            "final_at": NULLABLE_DATE_TIME,
            "metadata": {"type": "object", "nullable": True},
        },
    },
    "MessagePage": {
        "type": "object",
        "required": ["messages", "next_cursor"],
        "properties": {
            "messages": {"type": "array", "items": _ref("MessageSummary")},
            "next_cursor": {
                **NULLABLE_STRING,
                "description": "Pass as cursor for the next page; null on the last.",
            },
        },
    },
    "BatchResult": {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "messages": {
                "type": "array",
                "description": "In the order sent.",
                "items": {
                    "type": "object",
                    "required": ["id", "state"],
                    "properties": {"id": {"type": "integer"}, "state": {"type": "string", "enum": STATES}},
                },
            }
        },
    },
    "StatusEvent": {
        "type": "object",
        "description": "The body POSTed to a status_callback, signed in the Outbox-Signature header.",
        "required": ["event_id", "message_id", "state", "final", "at"],
        "properties": {
            "event_id": {
                "type": "integer",
                "description": "Unique per event: a retried delivery repeats it.",
            },
            "message_id": {"type": "integer"},
            "line": {"type": "string"},
            "to": {"type": "string"},
            "metadata": {"type": "object", "nullable": True},
            "state": {"type": "string", "enum": STATES},
            "final": {"type": "boolean"},
            "at": DATE_TIME,
        },
    },
}

_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The same key with the same request answers the first message (200) and sends "
    "nothing more; "
    "with a different request, 409. Per line. In a batch, message n gets `<key>:<n>` unless it has its own.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 190},
}

_COMMON_ERRORS = {
    "401": _error("No key, or an unknown or revoked one.", **{"WWW-Authenticate": "Bearer"}),
    "429": _error("Over the key's request rate.", **{"Retry-After": "Seconds to wait."}),
}

_SEND_ERRORS = {
    "400": _error("The body is not JSON (or not a readable form)."),
    "403": _error("The key may not send from that line."),
    "409": _error("The idempotency key stands for another request."),
    "413": _error("The body is over the size limit."),
    "415": _error("Neither JSON nor a multipart form."),
    "422": _error("The request names its problems, each with its field; nothing is recorded."),
    **_COMMON_ERRORS,
}

_PATHS: dict[str, Any] = {
    "/v1/messages": {
        "post": {
            "operationId": "sendMessage",
            "summary": "Send a text (SMS, long text as MMS with a .txt, or MMS with files).",
            "parameters": [_IDEMPOTENCY],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _ref("NewMessage")},
                    "multipart/form-data": {"schema": _ref("NewMessageForm")},
                },
            },
            "responses": {
                "201": _json(_ref("Message"), "Recorded: the message, as GET shows it (state queued)."),
                "200": _json(_ref("Message"), "An idempotent replay: the message the key stands for."),
                **_SEND_ERRORS,
            },
        },
        "get": {
            "operationId": "listMessages",
            "summary": "Messages in id order, a page at a time.",
            "parameters": [
                {"name": "line", "in": "query", "schema": {"type": "string"}},
                {"name": "state", "in": "query", "schema": {"type": "string", "enum": STATES}},
                {
                    "name": "since",
                    "in": "query",
                    "description": "Recorded at or after (RFC 3339).",
                    "schema": DATE_TIME,
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "next_cursor of the page before.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                },
            ],
            "responses": {
                "200": _json(_ref("MessagePage"), "A page of messages."),
                "403": _error("The key may not read that line."),
                "422": _error("A query parameter is not valid."),
                **_COMMON_ERRORS,
            },
        },
    },
    "/v1/messages:batch": {
        "post": {
            "operationId": "sendMessages",
            "summary": "Send many texts at once: all are recorded or none, problems named by index.",
            "parameters": [_IDEMPOTENCY],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Batch")}}},
            "responses": {
                "201": _json(_ref("BatchResult"), "All recorded."),
                "200": _json(_ref("BatchResult"), "An idempotent replay of a batch recorded before."),
                **_SEND_ERRORS,
            },
        }
    },
    "/v1/messages/{message_id}": {
        "get": {
            "operationId": "getMessage",
            "summary": "A message: its state, its parts and its history.",
            "parameters": [
                {"name": "message_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": {
                "200": _json(_ref("Message"), "The message."),
                "404": _error("No such message, or not on a line the key may read."),
                **_COMMON_ERRORS,
            },
        }
    },
}


def openapi_document() -> dict[str, Any]:
    """The document (a fresh copy)."""
    return copy.deepcopy(
        {
            "openapi": "3.0.3",
            "info": {
                "title": "zipwhip-outbox HTTP API",
                "version": "1",
                "description": "Send texts from a Zipwhip line and follow them to a final state. "
                "Every request sends `Authorization: Bearer <key>` (a key from `outbox apikey create`). "
                "Status callbacks are POSTed as a StatusEvent with the header "
                "`Outbox-Signature: t=<unix seconds>,v1=<hex>`, where <hex> is HMAC-SHA256 under the key's "
                "signing secret of `<t>.<raw body>`: recompute it, compare in constant time, and refuse a t "
                "more than five minutes away.",
            },
            "security": [{"bearer": []}],
            "paths": _PATHS,
            "components": {
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                "schemas": _SCHEMAS,
            },
        }
    )


def dump() -> str:
    """The document as checked in."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(dump())
