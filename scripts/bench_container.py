"""Benchmark the service image under the Fargate task's limits (0.25 vCPU, 512 MB).

Measures the image size, the cold start (``docker run`` until ``/readyz`` answers 200,
median of several runs) and the memory of the container idle and under load, prints a
table and, with ``--update-doc``, rewrites only the "Container (Fargate limits)"
section of docs/benchmarks.md.

    python scripts/bench_container.py [--image TAG] [--runs 5] [--update-doc docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

if __package__ in (None, ""):  # run as a file: make `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from scripts.container_image import (
    FARGATE_CPUS,
    FARGATE_MEMORY,
    MODEL_NAME,
    Container,
    ImageBuildError,
    cpu_seconds_until_ready,
    ensure_image,
    image_label,
    image_size_bytes,
    memory_usage_mb,
    model_info,
    process_cpu_seconds,
    resident_mb,
    run_container,
    wait_ready,
)
from training.features import EXAMPLE_FEATURES

SECTION_TITLE: Final = "## Container (Fargate limits)"
TARGET_READY_S: Final = 8.0
TARGET_IMAGE_MB: Final = 600.0
TARGET_LOADED_MB: Final = 300.0
LOAD_THREADS: Final = 8
IDLE_SETTLE_S: Final = 5.0


# Earlier measurements a run does not repeat (kept here so a rerun keeps them in the
# section), each with its conditions; `_notes` sets today's numbers beside them.
BEFORE_TEMPLATE_IMAGE_GB: Final = 1.34
SUPERVISOR_READY_S: Final = 12.9
SUPERVISOR_CONDITIONS: Final = (
    "`bentoml serve` (BentoML's arbiter process plus one worker) in image "
    "`wine-quality:xhgguxhjj2gk2ax4-69cc837-dirty` (same 516 MB template, same 60-tree "
    "model), 2026-11-26, same host and limits: median of 5 cold starts 12.9 s (12.4, 13.4, "
    "14.2, 12.9, 12.1; load average 3.6/2.2/1.8), 3.3 CPU-s to ready without a CPU limit "
    "(arbiter 1.7 + worker 1.6, summed from each process's /proc times), memory idle "
    "246 MB cgroup / 312 MB RSS"
)


@dataclass(frozen=True)
class Result:
    """One benchmark run's numbers."""

    image: str
    image_mb: float
    ready_s: list[float]
    idle_mb: float
    idle_rss_mb: float
    load_mb: float
    load_rss_mb: float
    load_requests: int
    load_rps: float
    load_failures: int
    startup_cpu_s: float
    startup_processes: dict[str, float]

    @property
    def ready_median_s(self) -> float:
        """Median cold start."""
        return statistics.median(self.ready_s)


def measure_cold_start(image: str) -> float:
    """Seconds from `docker run` to the first 200 on /readyz."""
    started = time.monotonic()
    container = run_container(image)
    try:
        wait_ready(container, timeout=180, interval=0.05)
        return time.monotonic() - started
    finally:
        container.remove()


def measure_startup_cpu(image: str) -> tuple[float, dict[str, float]]:
    """CPU seconds the container used until /readyz first answered 200, with no CPU limit.

    Read from the container's cgroup on the host (every process, exited ones included)
    at the first 200; then each process's own CPU time, by command line.
    """
    container = run_container(image, cpus=None)
    try:
        total = cpu_seconds_until_ready(container, timeout=180)
        processes = process_cpu_seconds(container)
    finally:
        container.remove()
    return total, processes


def _load(container: Container, requests: int) -> tuple[float, int, float, float]:
    """Send `requests` /predict calls; (req/s, failures, max cgroup MB, max RSS MB)."""
    body = {"features": dict(EXAMPLE_FEATURES)}
    failures = 0
    peaks = [0.0, 0.0]
    done = threading.Event()
    lock = threading.Lock()

    def sample() -> None:
        while not done.wait(1.0):
            peaks[0] = max(peaks[0], memory_usage_mb(container))
            peaks[1] = max(peaks[1], resident_mb(container))

    def send(client: httpx.Client) -> None:
        nonlocal failures
        if client.post("/predict", json=body).status_code != 200:
            with lock:
                failures += 1

    sampler = threading.Thread(target=sample, daemon=True)
    limits = httpx.Limits(max_connections=LOAD_THREADS)
    with (
        httpx.Client(base_url=container.url, timeout=60, limits=limits) as client,
        ThreadPoolExecutor(LOAD_THREADS) as pool,
    ):
        sampler.start()
        started = time.monotonic()
        list(pool.map(lambda _: send(client), range(requests)))
        elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    peaks[0] = max(peaks[0], memory_usage_mb(container))
    peaks[1] = max(peaks[1], resident_mb(container))
    return requests / elapsed, failures, peaks[0], peaks[1]


def run(image: str, runs: int, requests: int) -> Result:
    """All measurements for one image."""
    ready = []
    for i in range(runs):
        ready.append(measure_cold_start(image))
        print(f"cold start {i + 1}/{runs}: {ready[-1]:.1f} s", file=sys.stderr)
    startup_cpu, startup_processes = measure_startup_cpu(image)
    container = run_container(image)
    try:
        wait_ready(container, timeout=180)
        time.sleep(IDLE_SETTLE_S)
        idle, idle_rss = memory_usage_mb(container), resident_mb(container)
        rps, failures, load_mb, load_rss = _load(container, requests)
    finally:
        container.remove()
    return Result(
        image=image,
        image_mb=image_size_bytes(image) / 1e6,
        ready_s=ready,
        idle_mb=idle,
        idle_rss_mb=idle_rss,
        load_mb=load_mb,
        load_rss_mb=load_rss,
        load_requests=requests,
        load_rps=rps,
        load_failures=failures,
        startup_cpu_s=startup_cpu,
        startup_processes=startup_processes,
    )


def _verdict(value: float, target: float) -> str:
    return "yes" if value < target else "**no**"


def _docker_version() -> str:
    out = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def _model_description(image: str) -> str:
    """'`wine_quality:<version>`, N trees with leaves of at least M rows' of the image."""
    try:
        version = image_label(image, "wineq.model_version")
        metadata = model_info(version)["metadata"]
        params = metadata["hyperparameters"]  # type: ignore[index]
        return (
            f"`{MODEL_NAME}:{version}`, {params['n_estimators']} trees with leaves of at "
            f"least {params['min_samples_leaf']} rows"
        )
    except (ImageBuildError, KeyError, TypeError):
        return "a model absent from the local model store"


def _processes(result: Result) -> str:
    return ", ".join(f"`{command}`" for command in sorted(result.startup_processes)) or "none"


def _notes(result: Result) -> list[str]:
    """What the numbers mean, today's beside the earlier measurements they replace."""
    cpu, median = result.startup_cpu_s, result.ready_median_s
    n_processes = len(result.startup_processes)
    quota = float(FARGATE_CPUS)
    overhead = max(median - cpu / quota, 0.0)
    needed = (TARGET_READY_S - overhead) * quota
    return [
        "Notes:",
        "",
        f"- Image size: {BEFORE_TEMPLATE_IMAGE_GB} GB with BentoML 1.4.40's generated "
        "Dockerfile (measured 2026-11-26 on the same stand-in base image, then bundling a "
        "100-tree fully grown forest: build-essential, git, gnupg, uv's cache, every module "
        "compiled). `docker/Dockerfile.j2` drops the toolchain, the caches and the test "
        f"suites and compiles only the modules a start imports: {result.image_mb:.0f} MB now.",
        f"- Process model: the image's CMD is `python -m bento.launch` (bento/launch.py), "
        f"BentoML's worker in one process without the arbiter; at ready the container had "
        f"{n_processes} process{'es' if n_processes != 1 else ''} ({_processes(result)}). "
        f"Before it: {SUPERVISOR_CONDITIONS}. With the launcher: median cold start "
        f"{median:.1f} s ({median - SUPERVISOR_READY_S:+.1f} s) and {cpu:.2f} CPU-s to ready "
        "(read from the container's cgroup, which also counts exited processes).",
        f"- Cold start is CPU-bound: the `--cpus {FARGATE_CPUS}` quota grants "
        f"{FARGATE_CPUS} CPU-s per second, so {cpu:.2f} CPU-s to ready is at least "
        f"{cpu / quota:.1f} s of the measured {median:.1f} s (the rest is "
        "container creation and waiting within the quota). "
        + (
            f"The {TARGET_READY_S:.0f} s target is met."
            if median < TARGET_READY_S
            else f"The {TARGET_READY_S:.0f} s target is **not met**: with that "
            f"{overhead:.1f} s besides, it needs at most {needed:.2f} CPU-s to ready, "
            f"{cpu - needed:.2f} CPU-s less than now."
        ),
        "- Memory: the ONNX Runtime session of the default forest (60 trees, leaves of at "
        'least 3 rows) is ~87 MB ("Forest size" below; the 100-tree fully grown forest '
        f"took ~207 MB). Idle the container holds {result.idle_rss_mb:.0f} MB RSS; the "
        "arbiter process the launcher drops held ~85 MB of the 312 MB measured before.",
    ]


def render(result: Result) -> str:
    """The Markdown section (heading included)."""
    ready = ", ".join(f"{s:.1f}" for s in result.ready_s)
    cpu = result.startup_cpu_s
    budget = TARGET_READY_S * float(FARGATE_CPUS)
    rows = [
        ("Image size", f"{result.image_mb:.0f} MB", f"< {TARGET_IMAGE_MB:.0f} MB",
         _verdict(result.image_mb, TARGET_IMAGE_MB)),
        ("Cold start, `docker run` → `/readyz` 200 (median)",
         f"{result.ready_median_s:.1f} s ({ready})", f"< {TARGET_READY_S:.0f} s",
         _verdict(result.ready_median_s, TARGET_READY_S)),
        ("Memory idle (cgroup / RSS sum)", f"{result.idle_mb:.0f} / {result.idle_rss_mb:.0f} MB",
         "", ""),
        (f"Memory under load, peak (cgroup / RSS sum), {LOAD_THREADS} clients",
         f"{result.load_mb:.0f} / {result.load_rss_mb:.0f} MB", f"< {TARGET_LOADED_MB:.0f} MB",
         _verdict(result.load_mb, TARGET_LOADED_MB)),
        ("CPU time to ready, no CPU limit (container cgroup at the first `/readyz` 200)",
         f"{cpu:.2f} CPU-s", f"≤ {budget:.0f} CPU-s ({TARGET_READY_S:.0f} s × {FARGATE_CPUS})",
         "yes" if cpu <= budget else "**no**"),
        (f"Throughput of that load ({result.load_requests} × `/predict`, "
         f"{result.load_failures} failed)", f"{result.load_rps:.0f} req/s", "", ""),
    ]  # fmt: skip
    lines = [
        SECTION_TITLE,
        "",
        f"`scripts/bench_container.py` (`make bench-container`), "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d}: image `{result.image}` "
        f"({_model_description(result.image)}) run with "
        f"`--cpus {FARGATE_CPUS} --memory {FARGATE_MEMORY}` (the Fargate task), "
        f"Docker {_docker_version()}, host {platform.machine()} with "
        f"{os.cpu_count()} cores. Cgroup memory is what the 512 MB limit counts "
        "(usage minus inactive page cache, as `docker stats`); RSS sums every process in "
        f"the container ({_processes(result)}). Host load average at the end "
        f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())} (the machine may be shared: "
        "other work slows the cold starts).",
        "",
        "| Measure | Value | Target | Met |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        *_notes(result),
        "",
    ]
    return "\n".join(lines)


def update_doc(path: Path, section: str) -> None:
    """Replace this script's section of the document (append it when absent)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    try:
        start = lines.index(SECTION_TITLE)
    except ValueError:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = lines[end:]
        new = "\n".join([*lines[:start], *section.splitlines(), *(["", *tail] if tail else [])])
    path.write_text(new.rstrip("\n") + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, benchmark, print the table, optionally update the document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--image", help="image tag (default: build/reuse the current one)")
    parser.add_argument("--runs", type=int, default=5, help="cold starts to take the median of")
    parser.add_argument("--requests", type=int, default=3000, help="requests of the load phase")
    parser.add_argument("--update-doc", type=Path, help="Markdown file whose section to rewrite")
    args = parser.parse_args(argv)
    image = args.image or ensure_image()
    result = run(image, args.runs, args.requests)
    section = render(result)
    print(section)
    if args.update_doc:
        update_doc(args.update_doc, section)
        print(f"updated {args.update_doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
