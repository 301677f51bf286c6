"""The HTTP API's own pieces, apart from the web routes: keys, request rate, callback signing and
delivery. The routes (worker/web/v1/) call the same producer code as `send_message`."""
