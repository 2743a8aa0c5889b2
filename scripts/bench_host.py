"""What the benchmark scripts share: the host's CPU model and how busy its CPUs are,
where raw results go, and the order of the things measured in each round.

Standard library only, so a measuring subprocess can import it without loading more.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final, TypeVar

T = TypeVar("T")

# Raw numbers and logs of every benchmark run (build/ is not versioned).
RESULTS_DIR: Final = Path(__file__).resolve().parents[1] / "build" / "bench"


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


def round_order(items: Sequence[T], round_no: int) -> list[T]:
    """``items`` forwards in even rounds (0-based) and backwards in odd ones, so that a
    slow patch of a shared machine does not always hit the same item."""
    return list(items) if round_no % 2 == 0 else list(reversed(items))
