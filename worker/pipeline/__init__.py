"""A queued text's path to a final state, stage by stage.

release (periodic safety net) and dispatch (at commit) hand due parts to workers; send claims a part,
calls the provider and records the answer as decided by decide; track polls until the delivery state
is final; reconcile settles sends whose answer was lost; sweep and liveness recover the work of dead
workers; retry holds the backoff vocabulary they share.
"""
