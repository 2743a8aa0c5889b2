"""Serving benchmark: the service beside its baseline, MLServer and a bare ASGI app, one run.

Subjects (scripts/bench_subjects.py), one server process each on 127.0.0.1 serving the same
forest: ``service`` (this tree), ``service@REF`` (``--baseline-ref``, from a git worktree
under build/bench/, removed after), ``mlserver`` (Seldon MLServer's scikit-learn runtime)
and ``asgi-ceiling`` (a bare ASGI app: the ceiling of a one-process Python server).

Limits: ``core``, the server pinned to core 1 and the load to core 0; ``quarter``, the
same plus a cgroup (v1) with a CFS quota of 0.25 CPU and 512 MB of memory. Per subject and
limit: a closed loop by wrk at each of ``--connections`` (warm-up, then a counted window;
``--rounds`` rounds alternate the subjects' order), then in the last round an open loop
(scripts/open_loop.py): the highest constant rate held with p99 <= ``--p99-ms`` and no
error, found by short probes and confirmed over ``--open-duration`` seconds. RSS sums the
server's processes. Raw results: build/bench/serving-<UTC time>.json; the table goes to
docs/benchmarks.md (scripts/bench_serving_table.py).

    python scripts/bench_serving.py [--rounds 2] [--warmup 3] [--duration 15] [--open-duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final, TypeVar

if __package__ in (None, ""):  # run as a file: make `scripts` and `training` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvloop

from scripts.bench_container import round_order
from scripts.bench_subjects import (
    LIMITS,
    RESULTS_DIR,
    Cgroup,
    Limit,
    Server,
    Subject,
    ceiling_subject,
    mlserver_subject,
    mlserver_venv,
    model_entry,
    package_versions,
    service_subject,
    serving,
    worktree,
)
from scripts.open_loop import (
    OpenLoopResult,
    StepResult,
    holds,
    open_loop,
    search_rate,
    step_load,
)
from training.deploy import REPO_ROOT, repo_commit

WRK_SCRIPT: Final = REPO_ROOT / "scripts" / "bench_wrk.lua"
CLIENT_CORE: Final = 0
IDLE_SETTLE_S: Final = 2.0
CONFIRM_SHARES: Final = (1.0, 0.9, 0.8)  # of the rate found, tried in turn until one holds


class PeakRss:
    """Samples a group's RSS every 0.5 s on a thread while the block runs."""

    def __init__(self, group: Cgroup) -> None:
        self.group, self.mb, self._stop = group, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.mb = max(self.mb, self.group.rss_mb())
            if self._stop.wait(0.5):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def summarize_wrk(stdout: str) -> dict[str, Any]:
    """Counts and latencies from the WRK_JSON line of scripts/bench_wrk.lua."""
    line = next((x for x in stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise ValueError(f"no WRK_JSON line in wrk's output:\n{stdout[-2000:]}")
    w = json.loads(line.removeprefix("WRK_JSON "))
    seconds = w["duration_us"] / 1e6
    return {
        "requests": w["requests"],
        "seconds": round(seconds, 3),
        "good_rps": round((w["requests"] - w["status"]) / seconds, 1),
        "p50_ms": w["p50_us"] / 1000,
        "p90_ms": w["p90_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000,
        "max_ms": w["max_us"] / 1000,
        "non_2xx": w["status"],  # wrk counts statuses above 399
        "socket_errors": w["connect"] + w["read"] + w["write"] + w["timeout"],
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def closed_loop(
    server: Server, subject: Subject, connections: int, warmup: int, duration: int
) -> dict[str, Any]:
    """wrk on CLIENT_CORE: ``connections`` back-to-back posters, ``warmup`` s then ``duration``."""
    env = {**os.environ, "WRK_BODY": subject.body.decode()}
    wrk = ["taskset", "-c", str(CLIENT_CORE), "wrk", "-t1", f"-c{connections}",
           "--timeout", "5s", "--latency", "-s", str(WRK_SCRIPT)]  # fmt: skip
    url = server.url + subject.path
    server.settle()
    if warmup:
        subprocess.run([*wrk, f"-d{warmup}s", url], env=env, capture_output=True, check=True)
    client, cpu, wall = _children_cpu(), server.group.cpu_seconds(), time.monotonic()
    with PeakRss(server.group) as peak:
        done = subprocess.run(
            [*wrk, f"-d{duration}s", url], env=env, capture_output=True, text=True, check=True
        )
    wall = time.monotonic() - wall
    return {
        **summarize_wrk(done.stdout),
        "peak_rss_mb": round(peak.mb, 1),
        "server_cpu": round((server.group.cpu_seconds() - cpu) / wall, 3),
        "client_cpu": round((_children_cpu() - client) / wall, 3),
    }


R = TypeVar("R", OpenLoopResult, StepResult)


def _client_run(server: Server, load: Coroutine[Any, Any, R]) -> R:
    """Run one open-loop ``load`` in this process, on CLIENT_CORE, once the server is idle;
    record the server's CPU (cores) and peak RSS over it."""
    server.settle()
    cpu, wall = server.group.cpu_seconds(), time.monotonic()
    with PeakRss(server.group) as peak, asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        result = r.run(load)
    result.server_cpu = round((server.group.cpu_seconds() - cpu) / (time.monotonic() - wall), 3)
    result.peak_rss_mb = round(peak.mb, 1)
    return result


def constant_rate(
    server: Server, subject: Subject, rate: float, warmup: float, duration: float, conns: int
) -> OpenLoopResult:
    """One open-loop window (scripts/open_loop.py)."""
    url = server.url + subject.path
    result = _client_run(server, open_loop(url, subject.body, rate, warmup, duration, conns))
    _report(f"  open loop at {rate:g}/s", {**asdict(result), "good_rps": result.good / duration})
    return result


def open_loop_search(
    server: Server, subject: Subject, hint: float, args: argparse.Namespace
) -> dict[str, Any]:
    """Probe around ``hint`` (the closed loop's best req/s), then confirm the highest rate
    that held over ``--open-duration``, stepping down to 90 % and 80 % of it until one holds."""
    probes: list[OpenLoopResult] = []

    def probe(rate: float) -> bool:
        probes.append(
            constant_rate(server, subject, rate, 1, args.probe_duration, args.open_connections)
        )
        return holds(probes[-1], args.p99_ms)

    found = search_rate(probe, 0.5 * hint, 1.2 * hint, args.probes, quantum=10)
    confirms: list[OpenLoopResult] = []
    for rate in sorted({round(found * share / 10) * 10 for share in CONFIRM_SHARES}, reverse=True):
        if rate <= 0:
            break
        confirms.append(
            constant_rate(
                server, subject, rate, args.warmup, args.open_duration, args.open_connections
            )
        )
        if holds(confirms[-1], args.p99_ms):
            break
    held = confirms[-1] if confirms and holds(confirms[-1], args.p99_ms) else None
    return {
        "held_rate": held.rate if held else 0,
        "held": asdict(held) if held else None,
        "confirms": [asdict(c) for c in confirms],
        "probes": [asdict(p) for p in probes],
    }


def overload_step(
    server: Server, subject: Subject, capacity: float, args: argparse.Namespace
) -> dict[str, Any]:
    """Twice ``capacity`` (the closed loop's best req/s) then half of it, no pause between:
    what the admitted and the refused requests got, and how soon the errors stopped."""
    url = server.url + subject.path
    high, low = max(10, round(2 * capacity / 10) * 10), max(10, round(capacity / 20) * 10)
    load = step_load(url, subject.body, high, low, args.overload_duration, args.open_connections)
    result = _client_run(server, load)
    print(f"  step {high:g}/s then {low:g}/s: {asdict(result)}", file=sys.stderr, flush=True)
    return asdict(result)


def _report(label: str, row: dict[str, Any]) -> None:
    print(
        f"{label}: {row['good_rps']:.0f} good req/s, p99 {row['p99_ms']} ms, "
        f"non-2xx {row['non_2xx']}, errors {row.get('errors', row.get('socket_errors'))}, "
        f"server CPU {row['server_cpu']}, "
        f"client CPU {row['client_cpu']}",
        file=sys.stderr,
        flush=True,
    )


def measure(
    subject: Subject, limit: Limit, round_no: int, args: argparse.Namespace, with_open: bool
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One server start: idle RSS, the closed loops, and the open-loop search if asked."""
    stamp = f"{subject.name.replace('@', '-')}-{limit.key}-r{round_no + 1}"
    with serving(subject, limit, RESULTS_DIR / "logs" / f"serving-{stamp}.log") as server:
        time.sleep(IDLE_SETTLE_S)
        idle = round(server.group.rss_mb(), 1)
        base = {
            "subject": subject.name,
            "limit": limit.name,
            "round": round_no + 1,
            "ready_s": round(server.ready_s, 2),
            "idle_rss_mb": idle,
        }
        rows = []
        for connections in args.connections:
            rows.append(
                {
                    **base,
                    "connections": connections,
                    **closed_loop(server, subject, connections, args.warmup, args.duration),
                }
            )
            _report(
                f"{round_no + 1}/{args.rounds} {subject.name} {limit.name} c{connections}", rows[-1]
            )
        if not with_open:
            return rows, None
        hint = max(r["good_rps"] for r in rows)
        searched = open_loop_search(server, subject, hint, args)
        return rows, {**base, **searched, "overload": overload_step(server, subject, hint, args)}


def speed_probe() -> float:
    """CPU seconds of a fixed 3,000,000-step pure-Python loop (lower is faster)."""
    began, total = time.process_time(), 0
    for i in range(3_000_000):
        total += i % 7
    return round(time.process_time() - began, 3)


def conditions() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0]
    names = ["bentoml", "onnxruntime", "scikit-learn", "uvicorn", "uvloop", "httptools"]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": repo_commit(),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {**package_versions(sys.executable, names), "wrk": wrk.strip()},
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "speed_probe_start_s": speed_probe(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of one run, as a JSON-ready dictionary."""
    os.sched_setaffinity(0, {CLIENT_CORE})  # this process is the open-loop client
    report: dict[str, Any] = {"conditions": conditions()}
    entry = model_entry()
    with contextlib.ExitStack() as stack:
        subjects: list[Subject] = []
        rows = args.batch_rows
        if "service" in args.subjects:
            subjects.append(service_subject("service", REPO_ROOT, own_path=False, batch_rows=rows))
        if "baseline" in args.subjects:
            for ref in args.baseline_ref:  # one subject per lever: the service at each ref
                tree, sha = stack.enter_context(worktree(ref))
                subjects.append(service_subject(f"service@{sha}", tree, True, batch_rows=rows))
        if "mlserver" in args.subjects:
            venv, report["mlserver"] = mlserver_venv()
            subjects.append(mlserver_subject(venv, entry / "model.joblib"))
        if "ceiling" in args.subjects:
            subjects.append(ceiling_subject())
        closed: list[dict[str, Any]] = []
        opened: list[dict[str, Any]] = []
        failures: list[str] = []
        for round_no in range(args.rounds):
            for key in args.limits:
                with_open = round_no == args.rounds - 1 and key in args.open_loop
                for subject in round_order(subjects, round_no):
                    try:
                        rows, open_row = measure(subject, LIMITS[key], round_no, args, with_open)
                    except (RuntimeError, subprocess.CalledProcessError, ValueError) as error:
                        print(f"{subject.name} {key}: {error}", file=sys.stderr)
                        failures.append(f"{subject.name}, {LIMITS[key].name}: {error}"[:500])
                        continue
                    closed += rows
                    opened += [open_row] if open_row else []
    report["conditions"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["conditions"]["speed_probe_end_s"] = speed_probe()
    report["model"] = {"tag": f"wine_quality:{entry.name}"}
    report["subjects"] = [s.name for s in subjects]
    report["batch_rows"] = args.batch_rows
    report["limits"] = {LIMITS[k].name: asdict(LIMITS[k]) for k in args.limits}
    report["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    report["closed_loop"] = closed
    report["open_loop"] = opened
    report["failures"] = failures
    return report


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add(
        "--subjects",
        type=_names,
        default=_names("service,baseline,mlserver,ceiling"),
        help="comma-separated: service, baseline, mlserver, ceiling",
    )
    add(
        "--baseline-ref",
        type=_names,
        default=_names("a2a7648,5406bbc"),
        help="git refs of the service to compare, comma-separated (e.g. one per lever)",
    )
    add("--limits", type=_names, default=_names("core,quarter"), help="core and/or quarter")
    add(
        "--connections",
        type=lambda s: [int(x) for x in _names(s)],
        default=[8, 32],
        help="closed-loop connections, comma-separated",
    )
    add("--rounds", type=int, default=2, help="closed-loop rounds, alternating subject order")
    add("--warmup", type=int, default=3, help="seconds of load before each counted window")
    add("--duration", type=int, default=15, help="seconds of a counted closed-loop window")
    add(
        "--open-loop",
        type=_names,
        default=_names("quarter,core"),
        help="limits with an open-loop search (last round), comma-separated; '' for none",
    )
    add("--open-duration", type=float, default=60, help="seconds of the confirming window")
    add("--probe-duration", type=float, default=5, help="seconds of each probing step")
    add("--probes", type=int, default=5, help="probing steps per search")
    add("--p99-ms", type=float, default=100, help="p99 bound of the open-loop search")
    add(
        "--overload-duration",
        type=float,
        default=10,
        help="seconds at twice the closed loop's best rate, then as long at half of it",
    )
    add("--open-connections", type=int, default=256, help="open-loop client's connection cap")
    add(
        "--batch-rows",
        type=int,
        default=0,
        help="post /predict/batch of this many real wines to the services only, closed loop "
        "only; the doc section is then 'Batch side by side' (make bench-batch)",
    )
    add("--out", type=Path, help="JSON file (default: build/bench/serving-<time>.json)")
    add("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    unknown = set(args.limits + args.open_loop) - set(LIMITS)
    unknown |= set(args.subjects) - {"service", "baseline", "mlserver", "ceiling"}
    if unknown:
        parser.error(f"unknown subjects or limits: {', '.join(sorted(unknown))}")
    if args.batch_rows:
        args.subjects = [name for name in args.subjects if name in ("service", "baseline")]
        args.open_loop = []
    report = run(args)
    out = args.out or RESULTS_DIR / f"serving-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    from scripts import bench_serving_table

    bench_serving_table.main([str(out), *(["--no-doc"] if args.no_doc else [])])
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
