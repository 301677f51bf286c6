"""The Celery tasks, and the producer API application code imports.

from tasks import send_message
message_id = send_message("+15556661234", "+12065551234", "Your order shipped")
"""

from tasks.producer import InvalidMessage, send_message

__all__ = ["InvalidMessage", "send_message"]
