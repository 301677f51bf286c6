"""The HTTP API, version 1: send, batch, read and list messages with an API key (see docs/api/)."""
