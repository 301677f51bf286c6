"""`outbox bench`: the pipeline's send rate against a plain thread-pooled loop, in one run."""
