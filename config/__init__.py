"""Configuration: one settings object read from the environment, and the Celery configuration."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
