"""CPU time of the processes a bench round runs, as the kernel counts it: on a shared machine it is
steadier than any rate."""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads) so far; this process when None; 0.0
    where /proc does not say."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15 of stat)
