"""A stand-in for the Zipwhip REST API: answers exactly as the provider's wire contract says, so any
Zipwhip client pointed at it works unchanged; plus admin endpoints for tests, demo and benchmark.

It imports nothing of the outbox worker: it is the other side of the wire.
"""
