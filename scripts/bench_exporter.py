"""Exporter benchmark: the image at 0.25 vCPU without the CloudWatch exporter, with it and
CloudWatch answering (the moto server), and with it and CloudWatch down (a closed port).

The three variants run in the same rounds, their order alternating, each in a fresh
``docker run --cpus 0.25 --memory 512m`` container on the host network (the service on
127.0.0.1, like moto), under the container benchmark's closed loop of single-row
``POST /predict`` clients (``scripts/bench_container.py``).  The exporter sends every
``--interval`` seconds, more often than production's 60 s, so its cost shows.
Writes build/bench/exporter-<time>.json and the "Exporter" section of docs/benchmarks.md.

    python scripts/bench_exporter.py [--image TAG] [--rounds 2] [--duration 20] [--interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # run as a file: make `scripts` and `training` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_container import (
    RESULTS_DIR,
    Capacity,
    Cgroups,
    closed_loop,
    conditions,
    round_order,
)
from scripts.bench_table import DOC, replace_section
from scripts.container_image import (
    FARGATE_CPUS,
    FARGATE_MEMORY,
    Container,
    ensure_image,
    wait_ready,
)

SECTION_TITLE: Final = "## Exporter (CloudWatch, 0.25 vCPU)"
NAMESPACE: Final = "WineQualityBench"
# Dummy credentials are what moto accepts; they are not secrets.
MOTO_ENV: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
OFF: Final = "no exporter"
UP: Final = "exporter, CloudWatch answering"
DOWN: Final = "exporter, CloudWatch down"


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(port: int) -> subprocess.Popen[bytes]:
    """The moto server on 127.0.0.1:``port``, answering."""
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1):
                return moto
        except OSError:
            time.sleep(0.2)
    moto.kill()
    raise RuntimeError("moto did not start")


def run_service(image: str, env: Mapping[str, str]) -> Container:
    """The image under the Fargate limits on the host network, serving on 127.0.0.1."""
    port = free_port()
    settings = {"BENTOML_HOST": "127.0.0.1", "BENTOML_PORT": str(port), **env}
    env_args = [arg for key, value in settings.items() for arg in ("-e", f"{key}={value}")]
    container_id = subprocess.run(
        ["docker", "run", "-d", "--network", "host", "--cpus", FARGATE_CPUS,
         "--memory", FARGATE_MEMORY, "--memory-swap", FARGATE_MEMORY, *env_args, image],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return Container(container_id, port)


def exporter_counts(url: str) -> dict[str, float]:
    """The exporter's own counters from the service's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = ("wineq_exporter_sends_total", "wineq_exporter_failures_total")
    return {
        name: float(line.split()[-1])
        for line in text.splitlines()
        for name in wanted
        if line.startswith(name + " ")
    }


def measure(
    label: str, image: str, env: Mapping[str, str], round_no: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One variant in a fresh container: the closed loop's result and the exporter's counts."""
    container = run_service(image, env)
    try:
        wait_ready(container, timeout=180)
        ready = time.monotonic()
        first_call_s = None
        if env:
            # The exporter sets up its client right after readiness, once per task (the
            # load balancer sends no traffic yet then): the load starts after its first call.
            while sum(exporter_counts(container.url).values()) < 1:
                if time.monotonic() - ready > 180:
                    raise RuntimeError(f"{label}: the exporter never called CloudWatch")
                time.sleep(0.25)
            first_call_s = round(time.monotonic() - ready, 1)
        # Every variant starts its load as long after readiness (the exporter's first call
        # comes one interval after it), so time since start-up is no difference between them.
        time.sleep(max(0.0, ready + args.interval + 5.0 - time.monotonic()))
        cgroups = Cgroups.of(container)
        result = Capacity(label, image, round_no, 0.0, "", 0.0, 0.0)
        url = f"{container.url}/predict"
        asyncio.run(closed_loop(url, cgroups, result, args.connections, args.warmup, args.duration))
        counts = exporter_counts(container.url)
        return {**asdict(result), **counts, "first_call_s": first_call_s}
    finally:
        container.remove()


def render(report: Mapping[str, Any]) -> str:
    """The Markdown section for one run."""
    c, runs = report["conditions"], report["runs"]
    rates: dict[str, list[float]] = {}
    p99s: dict[str, list[float]] = {}
    for r in runs:
        rates.setdefault(r["label"], []).append(r["good"] / r["seconds"])
        p99s.setdefault(r["label"], []).append(r["p99_ms"] or 0.0)
    base = statistics.median(rates[OFF])
    summary = [
        f"| {label} | {statistics.median(rates[label]):.0f} "
        f"| {(statistics.median(rates[label]) / base - 1) * 100:+.1f} % "
        f"| {statistics.median(p99s[label]):.0f} |"
        for label in (OFF, UP, DOWN)
    ]
    rows = [
        f"| {r['label']} | {r['round_no'] + 1} | {r['good'] / r['seconds']:.0f} "
        f"| {r['p50_ms'] or 0:.0f} | {r['p99_ms'] or 0:.0f} | {r['errors']} "
        f"| {r['rejected_503']} | {r['server_cpu']:.2f} "
        f"| {r.get('wineq_exporter_sends_total', 0):.0f} "
        f"| {r.get('wineq_exporter_failures_total', 0):.0f} "
        f"| {r['first_call_s'] if r['first_call_s'] is not None else '–'} |"
        for r in runs
    ]
    load = report["load"]
    return "\n".join(
        [
            SECTION_TITLE,
            "",
            f"Written by `make bench-exporter` (`scripts/bench_exporter.py`; raw results in "
            f"`build/bench/`). Run {c['date']} at `{c['commit']}` on {c['cpu_model']} "
            f"({c['cores']} cores, load average {c['load_average_start'][0]} at the start, "
            f"{report['load_average_end'][0]} at the end), image `{report['image']}` under "
            f"`--cpus {FARGATE_CPUS} --memory {FARGATE_MEMORY}` on the host network. Each round "
            f"runs the three variants in fresh containers, the order alternating; "
            f"{load['connections']} closed-loop clients post one row to `/predict` for "
            f"{load['duration_s']:g} s after {load['warmup_s']:g} s of warm-up. The exporter "
            f"sends every {report['interval_s']:g} s (production: 60 s, so its share here is "
            f"larger); CloudWatch answering is the moto server on 127.0.0.1, CloudWatch down a "
            f"closed port. In every variant the load starts {report['interval_s'] + 5:g} s "
            f"after readiness, after the exporter's first call: it sets up its client once "
            f"per task, right after readiness, before the load balancer sends traffic (last "
            f"column: seconds from readiness to that call). The exporter counts are the whole "
            f"container's. Target: under 2 % throughput difference.",
            "",
            "| variant | good req/s (median) | vs no exporter | p99 ms (median) |",
            "|---|---|---|---|",
            *summary,
            "",
            "| variant | round | good req/s | p50 ms | p99 ms | errors | 503 | server CPU "
            "| PutMetricData sent | failed | first call (s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the variants, write the JSON and the benchmark section; print the JSON's path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--image", help="image tag (default: build or reuse the current one)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three variants")
    parser.add_argument("--connections", type=int, default=32, help="closed-loop clients")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load not counted")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load counted")
    parser.add_argument("--interval", type=float, default=5.0, help="exporter interval, s")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    image = args.image or ensure_image()
    moto_port = free_port()
    exporter = {
        "WINEQ_METRICS_NAMESPACE": NAMESPACE,
        "WINEQ_METRICS_INTERVAL_S": str(args.interval),
    }
    variants = [
        (OFF, {}),
        (UP, {**exporter, **MOTO_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}"}),
        (DOWN, {**exporter, **MOTO_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}),
    ]
    report: dict[str, Any] = {"conditions": conditions(), "image": image}
    moto = start_moto(moto_port)
    try:
        runs = []
        for round_no in range(args.rounds):
            for label, env in round_order(variants, round_no):
                runs.append(measure(label, image, env, round_no, args))
                rate = runs[-1]["good"] / runs[-1]["seconds"]
                print(f"{round_no + 1}/{args.rounds} {label}: {rate:.0f} req/s", file=sys.stderr)
    finally:
        moto.terminate()
        moto.wait(30)
    report.update(
        runs=runs,
        interval_s=args.interval,
        load={"connections": args.connections, "warmup_s": args.warmup,
              "duration_s": args.duration},
        load_average_end=[round(x, 2) for x in os.getloadavg()],
    )  # fmt: skip
    out = RESULTS_DIR / f"exporter-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    args.doc.write_text(replace_section(args.doc.read_text(), SECTION_TITLE, render(report)))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
