"""Peak memory of a process, as the kernel counts it (Linux `VmHWM`, the resident high-water mark)."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory in MB, or None where /proc does not say (not Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None
