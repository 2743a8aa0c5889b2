"""Container benchmark: the service image under the Fargate task's limits, beside a baseline.

For the current image and, with ``--baseline-image``, a previous one, in the same run with
the order alternating every round, each under ``docker run --cpus 0.25 --memory 512m``:

- cold start: ``docker run`` until ``/readyz`` answers 200 (median of ``--runs``), and the
  container's CPU seconds at that moment (its cgroup, read from the host);
- image size, memory idle and under load (cgroup charge and the processes' RSS);
- capacity of single-row ``POST /predict``: a closed loop of ``--connections`` clients,
  measured for ``--duration`` seconds after a warm-up (good req/s, p50, p99, errors, 503s),
  in ``--load-rounds`` fresh containers per image.

``--serve`` also times ``docker run IMAGE serve`` (BentoML's ``bentoml serve``). The raw
results go to build/bench/container-<UTC time>.json; scripts/bench_table.py renders them
into docs/benchmarks.md.

    python scripts/bench_container.py [--image TAG] [--baseline-image TAG] [--runs 7] [--serve]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

if __package__ in (None, ""):  # run as a file: make `scripts` and `training` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from scripts.container_image import (
    FARGATE_CPUS,
    FARGATE_MEMORY,
    REPO_ROOT,
    Container,
    ensure_image,
    git_revision,
    image_label,
    image_size_bytes,
    run_container,
    wait_ready,
)
from training.features import EXAMPLE_FEATURES

RESULTS_DIR: Final = REPO_ROOT / "build" / "bench"
CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
READY_TIMEOUT_S: Final = 180.0
IDLE_SETTLE_S: Final = 5.0
REQUEST_TIMEOUT_S: Final = 30.0
BODY: Final = json.dumps({"features": EXAMPLE_FEATURES}).encode()
T = TypeVar("T")


def round_order(items: Sequence[T], round_no: int) -> list[T]:
    """``items`` forwards in even rounds (0-based) and backwards in odd ones, so that a slow
    patch of a shared machine does not always hit the same image."""
    return list(items) if round_no % 2 == 0 else list(reversed(items))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _cgroup_dir(pid: str, controller: str) -> Path:
    """Host directory of ``pid``'s cgroup for ``controller`` (v1), else the unified one (v2)."""
    lines = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    for _, controllers, group in lines:
        if controller in controllers.split(","):
            for mount in (controllers, controller):  # "cpu,cpuacct" or its "cpuacct" link
                if (path := CGROUP_ROOT / mount / group.lstrip("/")).is_dir():
                    return path
    if (CGROUP_ROOT / "cgroup.controllers").is_file():
        return CGROUP_ROOT / next(g for _, c, g in lines if c == "").lstrip("/")
    raise RuntimeError(f"no {controller} cgroup for process {pid}")


def _keyed(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


@dataclass(frozen=True)
class Cgroups:
    """A container's cgroups, read from the host: measuring costs the container nothing
    (a `docker exec` would spend the container's own CPU quota)."""

    cpu: Path
    memory: Path

    @classmethod
    def of(cls, container: Container) -> Cgroups:
        """Locate the container's groups through its first process."""
        pid = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Pid}}", container.id],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        return cls(_cgroup_dir(pid, "cpuacct"), _cgroup_dir(pid, "memory"))

    def cpu_seconds(self) -> float:
        """CPU time of every process the container has run, exited ones included."""
        if (usage := self.cpu / "cpuacct.usage").is_file():  # v1, nanoseconds
            return int(usage.read_text()) / 1e9
        return _keyed(self.cpu / "cpu.stat")["usage_usec"] / 1e6

    def memory_mb(self) -> float:
        """What the memory limit counts: usage minus inactive page cache (as `docker stats`)."""
        if (current := self.memory / "memory.current").is_file():
            inactive = _keyed(self.memory / "memory.stat").get("inactive_file", 0)
            return (int(current.read_text()) - inactive) / 1e6
        inactive = _keyed(self.memory / "memory.stat").get("total_inactive_file", 0)
        return (int((self.memory / "memory.usage_in_bytes").read_text()) - inactive) / 1e6

    def rss_mb(self) -> float:
        """Sum of the resident set (VmRSS) of the container's processes."""
        kib = 0
        for pid in (self.memory / "cgroup.procs").read_text().split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:  # exited meanwhile
                continue
            kib += sum(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
        return kib * 1024 / 1e6


@dataclass
class Start:
    """One way of starting a container and its cold starts."""

    label: str
    image: str
    command: list[str] = field(default_factory=list)
    ready_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)


@dataclass
class Capacity:
    """The closed-loop load on one image and the container's memory before and during it."""

    label: str
    image: str
    round_no: int
    size_mb: float
    model_version: str
    idle_cgroup_mb: float
    idle_rss_mb: float
    load_cgroup_mb: float = 0.0
    load_rss_mb: float = 0.0
    seconds: float = 0.0
    good: int = 0
    rejected_503: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    server_cpu: float = 0.0
    client_cpu: float = 0.0


def cold_start(start: Start) -> None:
    """Time one start: `docker run` until the first /readyz 200; CPU seconds at that moment."""
    began = time.monotonic()
    container = run_container(start.image, command=start.command)
    try:
        cgroups = Cgroups.of(container)
        wait_ready(container, timeout=READY_TIMEOUT_S, interval=0.05)
        start.ready_s.append(round(time.monotonic() - began, 3))
        start.cpu_s.append(round(cgroups.cpu_seconds(), 3))
    finally:
        container.remove()


async def closed_loop(
    url: str, cgroups: Cgroups, result: Capacity, connections: int, warmup: float, duration: float
) -> None:
    """``connections`` clients post one row back to back; the answers that end in the
    window after ``warmup`` count, while memory is sampled once a second."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    window = [math.inf, math.inf]

    async def client(session: aiohttp.ClientSession) -> None:
        while True:
            began = time.perf_counter()
            try:
                async with session.post(
                    url, data=BODY, headers={"content-type": "application/json"}
                ) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            ended = time.perf_counter()
            if window[0] <= ended < window[1]:
                statuses[status] += 1
                if status == 200:
                    latencies.append((ended - began) * 1000)

    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(connections)]
        await asyncio.sleep(warmup)
        server_cpu, client_cpu = cgroups.cpu_seconds(), time.process_time()
        window[:] = [time.perf_counter(), time.perf_counter() + duration]
        while (left := window[1] - time.perf_counter()) > 0:
            result.load_cgroup_mb = max(result.load_cgroup_mb, cgroups.memory_mb())
            result.load_rss_mb = max(result.load_rss_mb, cgroups.rss_mb())
            await asyncio.sleep(min(1.0, left))
        result.seconds = time.perf_counter() - window[0]
        result.server_cpu = (cgroups.cpu_seconds() - server_cpu) / result.seconds
        result.client_cpu = (time.process_time() - client_cpu) / result.seconds
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    result.good, result.rejected_503 = statuses[200], statuses[503]
    result.errors = sum(statuses.values()) - result.good - result.rejected_503
    result.p50_ms, result.p99_ms = percentile(latencies, 50), percentile(latencies, 99)


def capacity(
    label: str, image: str, round_no: int, connections: int, warmup: float, duration: float
) -> Capacity:
    """Start the image, read its idle memory, then load it and read its capacity."""
    container = run_container(image)
    try:
        wait_ready(container, timeout=READY_TIMEOUT_S)
        cgroups = Cgroups.of(container)
        time.sleep(IDLE_SETTLE_S)
        model = image_label(image, "wineq.model_version")
        size_mb = image_size_bytes(image) / 1e6
        idle = cgroups.memory_mb(), cgroups.rss_mb()
        result = Capacity(label, image, round_no, size_mb, model, *idle)
        url = f"{container.url}/predict"
        asyncio.run(closed_loop(url, cgroups, result, connections, warmup, duration))
        return result
    finally:
        container.remove()


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def conditions() -> dict[str, Any]:
    """When, on what code and what machine the run takes place."""
    sha, dirty = git_revision()
    docker = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    )
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": sha + ("-dirty" if dirty else ""),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "docker": docker.stdout.strip() or "unknown",
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of one benchmark run, as a JSON-ready dictionary."""
    image = args.image or ensure_image()
    images = [("current", image)] + (
        [("baseline", args.baseline_image)] if args.baseline_image else []
    )
    starts = [Start(label, tag) for label, tag in images]
    if args.serve:
        starts.append(Start("current, bentoml serve", image, ["serve"]))
    report: dict[str, Any] = {"conditions": conditions()}
    for round_no in range(args.runs):
        for start in round_order(starts, round_no):
            cold_start(start)
            print(f"{round_no + 1}/{args.runs} {start.label}: {start.ready_s[-1]:.1f} s, "
                  f"{start.cpu_s[-1]:.2f} CPU-s", file=sys.stderr)  # fmt: skip
    loads = [
        capacity(label, tag, round_no, args.connections, args.warmup, args.duration)
        for round_no in range(args.load_rounds)
        for label, tag in round_order(images, round_no)
    ]
    report["conditions"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["limits"] = {"cpus": FARGATE_CPUS, "memory": FARGATE_MEMORY}
    report["load"] = {"connections": args.connections, "warmup_s": args.warmup,
                      "duration_s": args.duration, "body": EXAMPLE_FEATURES}  # fmt: skip
    report["starts"] = [asdict(s) for s in starts]
    report["images"] = [
        asdict(c) for c in sorted(loads, key=lambda c: (c.label != "current", c.label, c.round_no))
    ]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, benchmark, write the JSON and print its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--image", help="image tag (default: build or reuse the current one)")
    parser.add_argument("--baseline-image", help="previous image, measured in the same rounds")
    parser.add_argument("--runs", type=int, default=7, help="cold starts per image (median)")
    parser.add_argument("--serve", action="store_true", help="also time `docker run IMAGE serve`")
    parser.add_argument("--connections", type=int, default=32, help="closed-loop clients")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load not counted")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load counted")
    parser.add_argument("--load-rounds", type=int, default=3, help="loads per image")
    parser.add_argument(
        "--out", type=Path, help="JSON file (default: build/bench/container-<time>.json)"
    )
    args = parser.parse_args(argv)
    report = run(args)
    out = args.out or RESULTS_DIR / f"container-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
