"""The Zipwhip REST API: client, typed results, error vocabulary and status-code tables.

This package knows HTTP and the wire contract, nothing of Celery, the database or the settings object.
"""

from worker.zipwhip.client import ClientConfig, Upload, ZipwhipClient
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError
from worker.zipwhip.parse import message as parse_webhook_message
from worker.zipwhip.results import MmsReceipt, ProviderMessage, SmsReceipt

__all__ = [
    "Classification",
    "ClientConfig",
    "ErrorKind",
    "MmsReceipt",
    "ProviderError",
    "ProviderMessage",
    "SmsReceipt",
    "Upload",
    "ZipwhipClient",
    "parse_webhook_message",
]
