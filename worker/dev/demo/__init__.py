"""`outbox demo`: the whole pipeline on one machine, with a realistic mix and a live display."""
