"""The web process: health, Prometheus metrics and (later) the provider's webhooks."""
