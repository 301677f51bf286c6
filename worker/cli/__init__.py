"""The `outbox` command line."""

from worker.cli.root import main

__all__ = ["main"]
