"""What a producer's call goes through before a text is queued: checks, planning, idempotency, one commit."""
