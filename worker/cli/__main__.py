"""`python -m worker.cli` runs the `outbox` command."""

from worker.cli.root import main

main()
