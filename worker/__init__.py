"""The outbox worker: provider client, message planning, storage, rate limits, Celery app and CLI."""
