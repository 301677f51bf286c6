"""Fixed names: queues, task names and Redis key prefixes (one place, so they never drift)."""

SEND_QUEUE = "send"
STATUS_QUEUE = "status"
CONTROL_QUEUE = "control"
CALLBACK_QUEUE = "callbacks"  # status callbacks to HTTP API clients: slow receivers never hold up sends

TASK_SEND = "outbox.send"
TASK_POLL_LINE = "outbox.poll_line"
TASK_RECONCILE = "outbox.reconcile"
TASK_RELEASE = "outbox.release_due"
TASK_SWEEP = "outbox.sweep"
TASK_NOTIFY = "outbox.notify"
TASK_INBOUND = "outbox.inbound"
TASK_CALLBACK = "outbox.callback"
TASK_CALLBACK_SWEEP = "outbox.callback_sweep"

REDIS_PREFIX = "outbox:"
RATE_KEY = REDIS_PREFIX + "rate:"  # + line id: the line's next free send time (GCRA)
RATE_EPOCH_KEY = REDIS_PREFIX + "rate-epoch"  # the run id of the Redis server that last handed out slots
RATE_FLOOR_KEY = REDIS_PREFIX + "rate-floor"  # after a failover: no slot before this time
PACE_KEY = REDIS_PREFIX + "pace:"  # + line id: the earliest time the line's next send may really go
POLL_LEASE_KEY = REDIS_PREFIX + "poll-lease:"  # + line id: a line poll is on its way
LOCK_KEY = REDIS_PREFIX + "lock:"  # + name: one beat job at a time
RELEASE_QUEUED_KEY = REDIS_PREFIX + "release:queued"  # texts in the send queue after the last release
RELEASE_RUNS_KEY = REDIS_PREFIX + "release:runs"  # the last runs of the release job: what each did, how long
API_RATE_KEY = REDIS_PREFIX + "api-rate:"  # + key id + ":" + second: requests of an API key in that second
CALLBACK_LOCK_KEY = REDIS_PREFIX + "callback:"  # + message id: one delivery run at a time per message
