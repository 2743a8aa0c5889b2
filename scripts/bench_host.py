"""What the benchmark scripts read about the host: CPU model and how busy its CPUs are.

Standard library only, so a measuring subprocess can import it without loading more.
"""

from __future__ import annotations

from pathlib import Path


def cpu_model() -> str:
    """The first ``model name`` of /proc/cpuinfo ("unknown CPU" without one)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def host_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait; guest time is already inside user
    total = sum(values)
    return total - idle, total
