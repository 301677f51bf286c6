"""What the provider tells us: webhooks, received messages, opt-outs (STOP/START) and `outbox sync`."""
