"""Sending: a send task claims a batch of messages' next parts, calls the provider for all of them
at once, and records what each answer means.

Claim before send, record after: the claim takes each message's row lock and moves its part to
sending in one transaction for the whole batch, so a second delivery of the same task finds nothing
to do (or, if it is the same task whose worker died mid-call, settles it through reconciliation).
The provider calls happen outside any transaction, concurrently on the process's provider pool; the
answers are recorded in one transaction. Each message is decided on its own: one text's failure
never holds back another's.

`claim` takes the parts, `call` makes the provider calls, `record` writes the answers, and `step`
runs the three for one task.
"""

from worker.pipeline.send.step import send_step

__all__ = ["send_step"]
