"""The last gate before a send: its line's pace, as the sends really go.

The release job reserves each text's rate slot when it hands it to the workers, and the task waits
for it. A worker that falls behind (a host lost, a backed-up queue) runs its tasks late, and two
texts of a line whose slots were a second apart would then go together. So right before sending,
each text takes its place in its line's pace (`LineRateLimiter.pace`): it waits for the line's
previous send plus one interval, or, if that is more than a release period away, it is handed back
to the release job for later instead of holding a worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError

from config.celery import RELEASE_EVERY_S
from worker.infra.ratelimit import Going
from worker.infra.runtime import Runtime
from worker.pipeline.dispatch import line_rate, send_cost
from worker.store.models import Line, Part

log = logging.getLogger(__name__)

LONGEST_WAIT_S = RELEASE_EVERY_S  # past this a text is handed back; the release job brings it again


@dataclass(frozen=True)
class LinePace:
    """The pace gate of one process, on the runtime's rate limiter (Redis's clock, shared by hosts)."""

    runtime: Runtime

    def waits(self, going: Sequence[tuple[Line, Part]]) -> list[float]:
        """How long each text must wait before it goes; over LONGEST_WAIT_S: hand it back. Without
        Redis nothing waits: the slots reserved at release still spread the line's sends."""
        gaps = [Going(line.id or 0, self._gap(line, part)) for line, part in going]
        try:
            return self.runtime.limiter.pace(gaps, LONGEST_WAIT_S)
        except RedisError as error:
            log.warning("the line pace is unreachable (%s); sending at the reserved slots", error)
            return [0.0] * len(going)

    def _gap(self, line: Line, part: Part) -> float:
        rate = line_rate(self.runtime, line.rate_per_s)
        return send_cost(self.runtime, part.kind) / rate if rate > 0 else 0.0
