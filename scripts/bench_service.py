"""Compare serving designs side by side under Fargate's limits (0.25 vCPU, 512 MB).

Each design runs as a real ``bentoml serve`` on 127.0.0.1, inside a cgroup this script
creates (CPU quota 25 ms per 100 ms, memory limit 512 MiB), serving the same model
trained once into a temporary BENTOML_HOME.  A closed-loop load generator outside the
cgroup keeps a fixed number of connections busy with one-row ``/predict`` requests
sampled from the UCI CSVs.  The results are printed and written into the section
"## Service design at 0.25 vCPU" of docs/benchmarks.md (nothing else in that file
changes).  Needs root (cgroups); run it with ``make bench``.

Why not locust here: one asyncio/aiohttp process gives exactly N in-flight requests
with no think time, exact latency percentiles (locust rounds to two significant
digits) and a measured CPU cost of its own, reported next to the results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):  # run as a file: make `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_host import RESULTS_DIR, cpu_model, host_cpu_ticks, round_order
from scripts.container_image import FARGATE_MEMORY_MIB, http_status
from scripts.doc_sections import replace_section

REPO_ROOT = Path(__file__).resolve().parents[1]
BENTOML = Path(sys.executable).with_name("bentoml")
DOC_PATH = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_TITLE = "## Service design at 0.25 vCPU"

HOST = "127.0.0.1"
PORTS = range(3400, 3500)
CPU_PERIOD_US = 100_000
CPU_QUOTA_US = 25_000  # 0.25 vCPU, Fargate's smallest task
MEMORY_LIMIT_BYTES = FARGATE_MEMORY_MIB * 1024 * 1024
CGROUP_PREFIX = "wineq-bench-"
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0
CLIENT_TIMEOUT_S = 30.0
SAMPLE_ROWS = 2_000
SAMPLE_SEED = 7
MIB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
JSON_HEADERS = {"content-type": "application/json"}


# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One serving design: what `bentoml serve` runs and with which environment."""

    key: str
    label: str
    service: str
    env: dict[str, str]
    batch_methods: tuple[str, ...]
    capped: bool = True


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "a",
        "project service, ONNX, batchable",
        "bento.service:WineQualityService",
        {"WINEQ_ENGINE": "onnx"},
        ("predict",),
    ),
    Variant(
        "b",
        "project service, sklearn, batchable",
        "bento.service:WineQualityService",
        {"WINEQ_ENGINE": "sklearn"},
        ("predict",),
    ),
    Variant(
        "c",
        "one service, ONNX, no batching",
        "benchmarks.variants.unbatched:UnbatchedService",
        {"WINEQ_ENGINE": "onnx"},
        (),
    ),
    Variant(
        "d",
        "API service + batchable runner service (2 processes), ONNX",
        "benchmarks.variants.two_services:WineQualityApi",
        {"WINEQ_ENGINE": "onnx"},
        ("score",),
    ),
)
FULL_CORE = replace(
    VARIANTS[0],
    key="a*",
    label="project service, ONNX, batchable, no cgroup (reference)",
    capped=False,
)


# --------------------------------------------------------------------------- cgroups


def _mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, fs type, options) of every mount."""
    rows = []
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        rows.append((parts[1], parts[2], parts[3].split(",")))
    return rows


def _own_cgroup(controller: str) -> str:
    """This process's path in the hierarchy of a v1 controller ('' for the v2 entry)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return "/"


def _read_keyed(path: Path) -> dict[str, int]:
    """A 'key value' per line cgroup file as a dict (missing file: empty)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Cgroup:
    """A CPU- and memory-limited group holding one server's process tree (v1 or v2)."""

    version: int
    cpu_dir: Path
    memory_dir: Path

    @classmethod
    def create(cls, name: str) -> Cgroup:
        """Make the group with Fargate's limits: 25 ms CPU per 100 ms, 512 MiB, no swap."""
        version, cpu_parent, memory_parent = cgroup_parents()
        cpu_dir, memory_dir = cpu_parent / name, memory_parent / name
        for directory in {cpu_dir, memory_dir}:
            if directory.exists():  # a leftover of an interrupted run
                directory.rmdir()
            directory.mkdir()
        group = cls(version, cpu_dir, memory_dir)
        if version == 2:
            (cpu_dir / "cpu.max").write_text(f"{CPU_QUOTA_US} {CPU_PERIOD_US}")
            (memory_dir / "memory.max").write_text(str(MEMORY_LIMIT_BYTES))
            with contextlib.suppress(OSError):
                (memory_dir / "memory.swap.max").write_text("0")
        else:
            (cpu_dir / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (cpu_dir / "cpu.cfs_quota_us").write_text(str(CPU_QUOTA_US))
            (memory_dir / "memory.limit_in_bytes").write_text(str(MEMORY_LIMIT_BYTES))
            with contextlib.suppress(OSError):  # only exists with swap accounting
                (memory_dir / "memory.memsw.limit_in_bytes").write_text(str(MEMORY_LIMIT_BYTES))
        return group

    @property
    def procs_files(self) -> list[Path]:
        """The cgroup.procs files a process writes its pid into to join the group."""
        return sorted({self.cpu_dir / "cgroup.procs", self.memory_dir / "cgroup.procs"})

    def pids(self) -> list[int]:
        """Processes in the group now."""
        try:
            return [int(p) for p in (self.memory_dir / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def memory_peak(self) -> int | None:
        """Highest memory charged to the group since it was made (bytes)."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        return _read_int(self.memory_dir / name)

    def oom_kills(self) -> int:
        """Processes the kernel killed for exceeding the group's memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return _read_keyed(self.memory_dir / name).get("oom_kill", 0)

    def throttling(self) -> tuple[int, int]:
        """(CFS periods, periods in which the group was throttled)."""
        stat = _read_keyed(self.cpu_dir / "cpu.stat")
        return stat.get("nr_periods", 0), stat.get("nr_throttled", 0)

    def remove(self) -> None:
        """Delete the group once it is empty (retries while the last processes exit)."""
        for directory in {self.cpu_dir, self.memory_dir}:
            deadline = time.monotonic() + 15
            while directory.exists():
                try:
                    directory.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


def cgroup_parents() -> tuple[int, Path, Path]:
    """(version, parent for the cpu group, parent for the memory group); raise if unusable.

    cgroup v2 (/sys/fs/cgroup is cgroup2 with cpu and memory): groups go under the root.
    cgroup v1: groups nest under this process's own cpu and memory groups, so any limit
    the machine already puts on this process still applies on top of the benchmark's.
    """
    if os.geteuid() != 0:
        raise SystemExit("bench_service: cgroups need root (or run with --no-cgroup)")
    mounts = _mounts()
    unified = next((m for m in mounts if m[0] == "/sys/fs/cgroup" and m[1] == "cgroup2"), None)
    if unified is not None:
        root = Path(unified[0])
        available = (root / "cgroup.controllers").read_text().split()
        if not {"cpu", "memory"} <= set(available):
            raise SystemExit(f"bench_service: cgroup2 lacks cpu/memory controllers: {available}")
        enabled = (root / "cgroup.subtree_control").read_text().split()
        missing = [c for c in ("cpu", "memory") if c not in enabled]
        if missing:
            (root / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
        return 2, root, root
    parents: dict[str, Path] = {}
    for controller in ("cpu", "memory"):
        mount = next((m for m in mounts if m[1] == "cgroup" and controller in m[2]), None)
        if mount is None:
            raise SystemExit(
                f"bench_service: no cgroup v1 hierarchy with the {controller} controller"
            )
        parent = Path(mount[0]) / _own_cgroup(controller).lstrip("/")
        if not os.access(parent, os.W_OK):
            raise SystemExit(f"bench_service: {parent} is not writable")
        parents[controller] = parent
    return 1, parents["cpu"], parents["memory"]


# --------------------------------------------------------------------------- /proc


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """The pid and every descendant of root that is alive now."""
    children = _children_map()
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        if Path(f"/proc/{pid}").exists():
            tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def memory_kib(pids: Sequence[int]) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) over the processes, in KiB (PSS shares common pages)."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss, pss


# --------------------------------------------------------------------------- server


def free_port() -> int:
    """A port in 3400-3499 nothing listens on."""
    for port in random.sample(list(PORTS), len(PORTS)):
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise SystemExit("bench_service: no free port in 3400-3499")


@dataclass
class Server:
    """A `bentoml serve` process tree started by this script."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    cgroup: Cgroup | None
    started: float

    def tree(self) -> list[int]:
        """The server's processes now."""
        return process_tree(self.process.pid)

    def wait_ready(self) -> float:
        """Seconds from start until /readyz answered 200."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early; log:\n{self.log_tail()}")
            if http_status(f"{self.url}/readyz") == 200:
                return time.monotonic() - self.started
            time.sleep(0.5)
        raise RuntimeError(f"server not ready after {READY_TIMEOUT_S} s; log:\n{self.log_tail()}")

    def log_tail(self) -> str:
        """The last lines the server wrote."""
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL whatever of this server's tree is left."""
        pids = set(self.tree()) | set(self.cgroup.pids() if self.cgroup else [])
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
            if not alive:
                return
            time.sleep(0.2)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# The shell joins the cgroup before it execs bentoml, so every process of the tree
# (arbiter and workers) starts inside the group and nothing runs unlimited.
JOIN_AND_EXEC = 'for f in $WINEQ_BENCH_PROCS; do echo $$ > "$f" || exit 97; done; exec "$@"'


def start_server(variant: Variant, home: Path, tag: str, logs: Path) -> Server:
    """Start the variant's `bentoml serve` (inside a fresh cgroup when capped)."""
    cgroup = Cgroup.create(f"{CGROUP_PREFIX}{variant.key}") if variant.capped else None
    port = free_port()
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "OTEL_SDK_DISABLED": "true",
        "WINEQ_MODEL_TAG": tag,
        "WINEQ_DRAIN_SECONDS": "0",
        "WINEQ_BENCH_PROCS": " ".join(str(p) for p in cgroup.procs_files) if cgroup else "",
        **variant.env,
    }
    command = [str(BENTOML), "serve", variant.service, "--host", HOST, "--port", str(port)]
    log_path = logs / f"serve-{variant.key.replace('*', 'full')}-{time.time_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["/bin/sh", "-c", JOIN_AND_EXEC, "sh", *command],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Server(process, f"http://{HOST}:{port}", log_path, cgroup, time.monotonic())


# --------------------------------------------------------------------------- load


@dataclass
class Window:
    """What was measured during the timed window of one run."""

    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    generator_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    host_busy_cores: float = 0.0
    rss_kib_max: int = 0
    pss_kib_max: int = 0
    metrics_before: str = ""
    metrics_after: str = ""


async def _scrape(session: aiohttp.ClientSession, url: str) -> str:
    try:
        async with session.get(f"{url}/metrics") as response:
            return await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return ""


async def drive_load(
    server: Server, bodies: Sequence[bytes], connections: int, warmup: float, duration: float
) -> Window:
    """Closed loop: `connections` clients post one-row bodies back to back; time a window."""
    window = Window()
    bounds = [float("inf"), float("inf")]
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    url = f"{server.url}/predict"

    async def client(session: aiohttp.ClientSession, offset: int) -> None:
        index = offset
        while not stop.is_set():
            body = bodies[index % len(bodies)]
            index += connections
            begin = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=JSON_HEADERS) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            end = time.perf_counter()
            if bounds[0] <= end < bounds[1]:
                window.statuses[status] += 1
                if status == 200:
                    window.latencies_ms.append((end - begin) * 1000)

    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        aiohttp.ClientSession(timeout=timeout) as probe,
    ):
        tasks = [asyncio.create_task(client(session, i)) for i in range(connections)]
        await asyncio.sleep(warmup)
        window.metrics_before = await _scrape(probe, server.url)
        pids = server.tree()
        server_cpu, host, generator_cpu = cpu_seconds(pids), host_cpu_ticks(), time.process_time()
        bounds[0] = start = time.perf_counter()
        bounds[1] = start + duration
        while time.perf_counter() < bounds[1]:
            rss, pss = memory_kib(server.tree())
            window.rss_kib_max = max(window.rss_kib_max, rss)
            window.pss_kib_max = max(window.pss_kib_max, pss)
            await asyncio.sleep(min(1.0, max(0.0, bounds[1] - time.perf_counter())))
        window.seconds = time.perf_counter() - start
        window.generator_cpu_s = time.process_time() - generator_cpu
        window.server_cpu_s = cpu_seconds(pids) - server_cpu
        busy, total = host_cpu_ticks()
        cores = os.cpu_count() or 1
        window.host_busy_cores = cores * (busy - host[0]) / max(1, total - host[1])
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        window.metrics_after = await _scrape(probe, server.url)
    return window


# --------------------------------------------------------------------------- results

BATCH_SERIES = re.compile(
    r"^bentoml_service_adaptive_batch_size_(sum|count)\{(.*?)\}\s+([0-9.eE+-]+)$", re.M
)


def batch_totals(metrics_text: str, methods: Sequence[str]) -> tuple[float, float]:
    """(sum, count) of the adaptive batch size histogram over the given API methods."""
    totals = {"sum": 0.0, "count": 0.0}
    for kind, labels, value in BATCH_SERIES.findall(metrics_text):
        if any(f'method_name="{m}"' in labels for m in methods):
            totals[kind] += float(value)
    return totals["sum"], totals["count"]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Result:
    """One variant's numbers from one run."""

    key: str
    label: str
    capped: bool
    round: int
    ready_s: float
    seconds: float
    good_rps: float
    requests: int
    error_share: float
    share_503: float
    p50_ms: float
    p99_ms: float
    server_cpu_cores: float
    generator_cpu_cores: float
    other_load_cores: float
    rss_mib: float
    pss_mib: float
    cgroup_peak_mib: float | None
    oom_kills: int
    throttled_share: float | None
    mean_batch: float | None
    statuses: dict[str, int]


def summarise(
    variant: Variant, round_no: int, ready_s: float, window: Window, server: Server
) -> Result:
    """Turn a window's raw counts into the reported numbers."""
    requests = sum(window.statuses.values())
    good = window.statuses.get(200, 0)
    mean_batch = None
    if variant.batch_methods:
        sum_before, count_before = batch_totals(window.metrics_before, variant.batch_methods)
        sum_after, count_after = batch_totals(window.metrics_after, variant.batch_methods)
        if count_after > count_before:
            mean_batch = (sum_after - sum_before) / (count_after - count_before)
    peak = server.cgroup.memory_peak() if server.cgroup else None
    server_cores = window.server_cpu_s / window.seconds
    generator_cores = window.generator_cpu_s / window.seconds
    return Result(
        key=variant.key,
        label=variant.label,
        capped=variant.capped,
        round=round_no,
        ready_s=ready_s,
        seconds=window.seconds,
        good_rps=good / window.seconds,
        requests=requests,
        error_share=(requests - good) / requests if requests else 1.0,
        share_503=window.statuses.get(503, 0) / requests if requests else 0.0,
        p50_ms=percentile(window.latencies_ms, 50),
        p99_ms=percentile(window.latencies_ms, 99),
        server_cpu_cores=server_cores,
        generator_cpu_cores=generator_cores,
        other_load_cores=max(0.0, window.host_busy_cores - server_cores - generator_cores),
        rss_mib=window.rss_kib_max / 1024,
        pss_mib=window.pss_kib_max / 1024,
        cgroup_peak_mib=peak / MIB if peak is not None else None,
        oom_kills=server.cgroup.oom_kills() if server.cgroup else 0,
        throttled_share=None,
        mean_batch=mean_batch,
        statuses={str(k): v for k, v in sorted(window.statuses.items())},
    )


def bench_variant(
    variant: Variant,
    round_no: int,
    home: Path,
    tag: str,
    bodies: Sequence[bytes],
    args: argparse.Namespace,
    logs: Path,
) -> Result:
    """Start, load, measure and stop one variant; always removes its cgroup."""
    print(f"[{variant.key}] {variant.label}: starting", flush=True)
    server = start_server(variant, home, tag, logs)
    try:
        ready_s = server.wait_ready()
        print(f"[{variant.key}] ready after {ready_s:.1f} s; pids {server.tree()}", flush=True)
        periods_before = server.cgroup.throttling() if server.cgroup else (0, 0)
        window = asyncio.run(
            drive_load(server, bodies, args.connections, args.warmup, args.duration)
        )
        result = summarise(variant, round_no, ready_s, window, server)
        if server.cgroup:
            periods, throttled = server.cgroup.throttling()
            spent = periods - periods_before[0]
            result.throttled_share = (throttled - periods_before[1]) / spent if spent else None
        print(f"[{variant.key}] {format_row(result)}", flush=True)
        return result
    finally:
        server.stop()
        if server.cgroup:
            server.cgroup.remove()


# --------------------------------------------------------------------------- setup


def train_model(home: Path, trees: int | None) -> str:
    """Train a forest into BENTOML_HOME with the project's CLI; return its tag."""
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "WINEQ_TRAIN_RANDOM_STATE": "42",
    }
    if trees is not None:
        env["WINEQ_TRAIN_N_ESTIMATORS"] = str(trees)
    done = subprocess.run(
        [sys.executable, "-m", "training", "train"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench_service: training failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def request_bodies() -> list[bytes]:
    """One-row /predict bodies sampled from both UCI CSVs (WINEQ_TRAIN_DATA_DIR honoured)."""
    from training.data import load_wine_data, request_features
    from training.settings import TrainingSettings

    frame = load_wine_data(TrainingSettings()).frame
    sample = frame.sample(n=min(SAMPLE_ROWS, len(frame)), random_state=SAMPLE_SEED)
    return [
        json.dumps({"features": features, "request_id": f"bench-{i}"}).encode()
        for i, features in enumerate(request_features(sample))
    ]


def variant_home(base: Path, key: str) -> Path:
    """A BENTOML_HOME per variant sharing the trained model (metrics dirs stay apart)."""
    home = base / f"home-{key.replace('*', 'full')}"
    home.mkdir()
    (home / "models").symlink_to(base / "home" / "models")
    return home


# --------------------------------------------------------------------------- report

COLUMNS = (
    "variant",
    "good req/s",
    "errors",
    "503",
    "p50 ms",
    "p99 ms",
    "server CPU",
    "RSS MiB",
    "PSS MiB",
    "cgroup peak MiB",
    "mean batch",
    "ready s",
    "other load",
)


def _cells(r: Result) -> list[str]:
    def opt(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    return [
        r.key,
        f"{r.good_rps:.0f}",
        f"{r.error_share:.1%}",
        f"{r.share_503:.1%}",
        f"{r.p50_ms:.0f}",
        f"{r.p99_ms:.0f}",
        f"{r.server_cpu_cores:.2f}",
        f"{r.rss_mib:.0f}",
        f"{r.pss_mib:.0f}",
        opt(r.cgroup_peak_mib, ".0f"),
        opt(r.mean_batch, ".1f"),
        f"{r.ready_s:.0f}",
        f"{r.other_load_cores:.2f}",
    ]


def format_row(r: Result) -> str:
    """One result as a log line."""
    return "  ".join(f"{c}={v}" for c, v in zip(COLUMNS, _cells(r), strict=True))


def markdown_table(results: Sequence[Result]) -> str:
    """The results as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in results]
    return "\n".join(lines)


def text_table(results: Sequence[Result]) -> str:
    """The results as an aligned plain-text table."""
    rows = [list(COLUMNS), *(_cells(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def pick_least_disturbed(results: Sequence[Result]) -> list[Result]:
    """Per variant, the run during which the rest of the machine was least busy."""
    chosen = []
    for key in dict.fromkeys(r.key for r in results):
        chosen.append(min((r for r in results if r.key == key), key=lambda r: r.other_load_cores))
    return chosen


def _refusals(r: Result) -> str:
    """'13.2 % (500: 40, no answer: 2)' for a run with errors, '' otherwise."""
    bad = {k: v for k, v in r.statuses.items() if k != "200"}
    if not bad:
        return ""
    parts = ", ".join(f"{'no answer' if k == '0' else k}: {v}" for k, v in bad.items())
    return f"{r.error_share:.1%} ({parts})"


def conclusion(results: Sequence[Result]) -> str:
    """A data-driven recommendation: the best healthy capped design, compared with the rest."""
    capped = {r.key: r for r in results if r.capped}
    healthy = [r for r in capped.values() if r.error_share <= 0.01 and r.oom_kills == 0]
    if not healthy:
        return "No design served with at most 1 % errors at 0.25 vCPU; no recommendation."
    best = max(healthy, key=lambda r: r.good_rps)
    limit_mib = MEMORY_LIMIT_BYTES // MIB
    parts = [
        f"Keep ({best.key}) {best.label}: the most good answers at 0.25 vCPU, "
        f"{best.good_rps:.0f} req/s (p50 {best.p50_ms:.0f} ms, p99 {best.p99_ms:.0f} ms), "
        f"{best.rss_mib:.0f} MiB RSS of the {limit_mib} MiB limit."
    ]
    for other in sorted(capped.values(), key=lambda r: r.key):
        if other is best:
            continue
        ratio = other.good_rps / best.good_rps if best.good_rps else float("nan")
        errors = _refusals(other)
        parts.append(
            f"({other.key}) {ratio:.2f}x its throughput, p99 {other.p99_ms:.0f} ms, "
            f"{other.rss_mib:.0f} MiB RSS" + (f", errors {errors}" if errors else "") + "."
        )
    for reference in (r for r in results if not r.capped and r.key.rstrip("*") == best.key):
        parts.append(
            f"Without the limit ({reference.key}) the same service does "
            f"{reference.good_rps:.0f} req/s on {reference.server_cpu_cores:.2f} cores "
            f"({reference.good_rps / max(reference.server_cpu_cores, 1e-9):.0f} per CPU-second "
            f"against {best.good_rps / max(best.server_cpu_cores, 1e-9):.0f} when capped): "
            "one worker scales with the CPU it is given."
        )
    return " ".join(parts)


def render_section(
    results: Sequence[Result], all_runs: Sequence[Result], rounds_run: int, env: str
) -> str:
    """The whole '## Service design at 0.25 vCPU' section, heading included."""
    rounds = (
        ""
        if rounds_run == 1
        else (
            f" Each variant ran {rounds_run} times (order reversed every other round); the "
            "table shows each variant's least disturbed run (lowest other load); all runs are in "
            "build/bench/ (not committed)."
        )
    )
    spread = {
        key: sorted(r.good_rps for r in all_runs if r.key == key)
        for key in dict.fromkeys(r.key for r in all_runs)
    }
    spread_line = ""
    if rounds_run > 1:
        spread_line = (
            "Good req/s over all runs: "
            + "; ".join(
                f"({k}) " + ", ".join(f"{v:.0f}" for v in values) for k, values in spread.items()
            )
            + ".\n\n"
        )
    legend = "\n".join(f"- ({r.key}) {r.label}" for r in results)
    return f"""{SECTION_TITLE}

Written by `make bench` (`scripts/bench_service.py`); rerun it to refresh this section.
Which serving design to keep on a Fargate task of 0.25 vCPU and 512 MB: the project's
one batchable service (ONNX or sklearn engine), a service without adaptive batching,
or an API service in front of a batchable runner service (two processes).

{legend}

{markdown_table(results)}

{spread_line}Columns: good req/s = 200 answers per second in the timed window; errors = share of
answers that were not 200 (503 separately); p50/p99 = latency of the 200 answers as
the client saw it; server CPU = CPU time of the server's processes per second (0.25 is
the quota); RSS/PSS = highest sum over the server's process tree during the window
(PSS counts shared pages once); cgroup peak = highest memory charged to the group,
start-up included; mean batch = rows per model call from
`bentoml_service_adaptive_batch_size` (sum/count deltas over the window; (d): the
runner's); ready s = seconds from start to `/readyz` 200; other load = host CPU
busy with everything else (cores, out of {os.cpu_count()}) during the window.

Reading the numbers: when "server CPU" shows 0.25 the quota, not the shared machine,
was the limit.  The kernel enforces the quota per 100 ms period, so a server that has
spent its 25 ms waits for the next period: at 0.25 vCPU p99 is several times p50.

**Conditions.** {env}{rounds}

**Conclusion.** {conclusion(results)}
"""


def environment_line(args: argparse.Namespace, cgroup_version: int | None, started: str) -> str:
    """Machine, software and load conditions, as one paragraph."""
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("bentoml", "onnxruntime", "scikit-learn", "aiohttp")
    )
    limit = (
        f"cgroup v{cgroup_version} group per variant (CPU quota {CPU_QUOTA_US // 1000} ms per "
        f"{CPU_PERIOD_US // 1000} ms = 0.25 vCPU, memory limit {MEMORY_LIMIT_BYTES // MIB} MiB, "
        "no swap), the whole `bentoml serve` tree inside it"
        if cgroup_version
        else "no cgroup (--no-cgroup: numbers are NOT at 0.25 vCPU)"
    )
    load = os.getloadavg()
    return (
        f"{started}; {cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {versions}. Server: {limit}. Model: "
        f"{args.trees}-tree forest (leaves of at least {args.min_samples_leaf} rows) trained "
        f"at the start of the run. Load: {args.connections} "
        f"connections, closed loop, one-row `/predict` bodies sampled from the UCI CSVs, "
        f"{args.warmup:g} s warm-up then {args.duration:g} s measured, from one asyncio/aiohttp "
        "process outside the cgroup (its own CPU use is in build/bench/*.json). The 2-core machine "
        "was shared with other engineers' Docker image builds and test runs (load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end); the 'other load' column "
        "shows how much of the machine they used during each window."
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=8.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--trees", type=int, default=None, help="forest size to train (default: the project's)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per variant")
    parser.add_argument("--variants", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    parser.add_argument(
        "--no-full-core", action="store_true", help="skip the uncapped reference run of (a)"
    )
    parser.add_argument(
        "--no-cgroup", action="store_true", help="run without limits (no root needed)"
    )
    parser.add_argument("--doc", type=Path, default=DOC_PATH, help="Markdown file to update")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="re-render the table and doc section from a saved run instead of measuring",
    )
    args = parser.parse_args(argv)
    from training.settings import TrainingSettings

    defaults = TrainingSettings()
    if args.trees is None:
        args.trees = defaults.n_estimators
    args.min_samples_leaf = defaults.min_samples_leaf
    return args


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A temporary directory removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="wineq-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(report: dict[str, Any], doc: Path | None) -> None:
    """Print the table and conclusion of a report; rewrite our doc section when doc is set."""
    runs = [Result(**run) for run in report["runs"]]
    results = pick_least_disturbed(sorted(runs, key=lambda r: (r.key.rstrip("*"), r.key)))
    print()
    print(text_table(results))
    print()
    print(conclusion(results))
    if doc is not None:
        section = render_section(results, runs, report["rounds"], report["environment"])
        replace_section(doc, SECTION_TITLE, section)
        print(f"updated '{SECTION_TITLE}' in {doc}")


def main(argv: Sequence[str] | None = None) -> int:
    """Train once, run every variant, print the table and update the doc."""
    args = parse_args(argv)
    doc = None if args.no_doc else args.doc
    if args.render is not None:
        publish(json.loads(args.render.read_text()), doc)
        return 0
    chosen = [v for v in VARIANTS if v.key in args.variants.split(",")]
    if args.no_cgroup:
        chosen = [replace(v, capped=False) for v in chosen]
        cgroup_version = None
    else:
        cgroup_version = cgroup_parents()[0]
    if not args.no_full_core:
        chosen.append(FULL_CORE)
    now = datetime.now(UTC)
    started = now.strftime("%Y-%m-%d %H:%M UTC")
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    logs = RESULTS_DIR / f"logs-{stamp}"
    logs.mkdir(parents=True)
    runs: list[Result] = []
    with workspace() as work:
        (work / "home").mkdir()
        print(f"training a {args.trees}-tree forest into {work / 'home'}", flush=True)
        tag = train_model(work / "home", args.trees)
        bodies = request_bodies()
        print(f"model {tag}; {len(bodies)} request bodies", flush=True)
        for round_no in range(1, args.rounds + 1):
            for variant in round_order(chosen, round_no - 1):  # round_no counts from 1
                home = variant_home(work, f"{variant.key}-{round_no}")
                runs.append(bench_variant(variant, round_no, home, tag, bodies, args, logs))
    report = {
        "environment": environment_line(args, cgroup_version, started),
        "rounds": args.rounds,
        "runs": [asdict(r) for r in runs],
    }
    out = RESULTS_DIR / f"service-design-{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"all runs and server logs: {out}, {logs}")
    publish(report, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
