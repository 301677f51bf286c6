"""The Celery tasks, and the producer API application code imports.

from tasks import send_message, send_messages
message_id = send_message("+15556661234", "+12065551234", "Your order shipped")
ids = send_messages([{"line": "+15556661234", "to": "+12065551234", "body": "Your order shipped"}, ...])
"""

from tasks.producer import IdempotencyConflict, InvalidMessage, TextRequest, send_message, send_messages

__all__ = ["IdempotencyConflict", "InvalidMessage", "TextRequest", "send_message", "send_messages"]
