"""The Zipwhip REST API: client, typed results, error vocabulary and status-code tables.

This package knows HTTP and the wire contract, nothing of Celery, the database or the settings object.
"""
