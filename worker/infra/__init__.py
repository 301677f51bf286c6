"""The machinery every stage leans on.

Runtime and settings, broker lanes, rate limits, locks, logs and metrics.
"""
