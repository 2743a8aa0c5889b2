"""The servers scripts/bench_serving.py measures and how each runs: its command, request and
answer check, and the cgroup (v1) that pins, limits and accounts for it.

- ``service``: a tree's ``python -m bento.launch`` on wine_quality:latest ($BENTOML_HOME),
  its default engine (ONNX Runtime); for a baseline, a git worktree whose own ``bento``
  package comes first on the path (asserted);
- ``mlserver``: Seldon MLServer with its scikit-learn runtime on the store entry's
  model.joblib, V2 protocol, adaptive batching (32 rows, 5 ms), ``parallel_workers`` 0
  (inference in the server's one process), metrics server off; installed on first use into
  build/bench/mlserver-venv, never into the project's venv;
- ``asgi-ceiling``: scripts/asgi_ceiling.py under uvicorn (httptools, uvloop).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from training.deploy import REPO_ROOT
from training.features import EXAMPLE_FEATURES, encode_row

RESULTS_DIR: Final = REPO_ROOT / "build" / "bench"
CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
SERVER_CORE: Final = 1
READY_TIMEOUT_S: Final = 240.0
SETTLED_CORES: Final = 0.03  # a server using less than this is done with earlier load
SETTLE_MAX_S: Final = 20.0
MLSERVER_VERSION: Final = "1.7.1"
SERVICE_BODY: Final = json.dumps({"features": EXAMPLE_FEATURES}).encode()
V2_ROW: Final = encode_row(EXAMPLE_FEATURES)  # MODEL_COLUMNS: 11 measurements, then is_white
V2_BODY: Final = json.dumps(
    {"inputs": [{"name": "row", "shape": [1, len(V2_ROW)], "datatype": "FP64", "data": V2_ROW}]}
).encode()
_group_ids = itertools.count(1)


@dataclass(frozen=True)
class Limit:
    """What a server runs under, besides being pinned to SERVER_CORE."""

    key: str
    name: str
    cpu_quota_us: int | None = None  # per 100 ms period
    memory_bytes: int | None = None


LIMITS: Final = {
    "core": Limit("core", "1 core"),
    "quarter": Limit("quarter", "0.25 vCPU / 512 MB", 25_000, 512 * 1024 * 1024),
}


@dataclass(frozen=True)
class Subject:
    """One server to measure: how to start it and what to send it."""

    name: str
    cwd: Path
    env: dict[str, str]
    command: Callable[[int], list[str]]  # argv for a port
    ready_path: str
    path: str
    body: bytes
    is_prediction: Callable[[Any], bool]


class Cgroup:
    """One server's cgroup (v1) in the cpu, cpuacct and memory hierarchies, under this
    process's own groups: the limits, and the server's CPU time and processes."""

    CONTROLLERS: Final = ("cpu", "cpuacct", "memory")

    def __init__(self, name: str, limit: Limit) -> None:
        own: dict[str, str] = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, group = line.split(":", 2)
            own.update(dict.fromkeys(controllers.split(","), group.lstrip("/")))
        self.dirs = {c: CGROUP_ROOT / c / own.get(c, "") / name for c in self.CONTROLLERS}
        if os.geteuid() != 0 or not all(d.parent.is_dir() for d in self.dirs.values()):
            raise SystemExit("needs root and cgroup v1 cpu, cpuacct and memory hierarchies")
        for path in self.dirs.values():
            path.mkdir(exist_ok=True)
        if limit.cpu_quota_us:
            (self.dirs["cpu"] / "cpu.cfs_period_us").write_text("100000")
            (self.dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(limit.cpu_quota_us))
        if limit.memory_bytes:
            for knob in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
                if (self.dirs["memory"] / knob).exists():
                    (self.dirs["memory"] / knob).write_text(str(limit.memory_bytes))

    def wrapper(self) -> list[str]:
        """A shell that moves itself into the groups, then execs its arguments."""
        joins = "; ".join(f"echo $$ > {d}/cgroup.procs" for d in self.dirs.values())
        return ["sh", "-c", f'{joins}; exec "$@"', "sh"]

    def cpu_seconds(self) -> float:
        return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9

    def rss_mb(self) -> float:
        """Sum of VmRSS over the group's processes."""
        kib = 0
        for pid in (self.dirs["memory"] / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # exited meanwhile
                status = Path(f"/proc/{pid}/status").read_text()
                kib += sum(
                    int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:"
                )
        return kib * 1024 / 1e6

    def remove(self) -> None:
        for path in self.dirs.values():
            for _ in range(50):  # the last process may take a moment to leave
                if not path.is_dir():  # gone, or the same group as another controller's
                    break
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


@dataclass
class Server:
    url: str
    group: Cgroup
    ready_s: float

    def settle(self) -> None:
        """Wait (up to SETTLE_MAX_S) until the server is idle, so that no backlog of the
        previous step, e.g. an overloaded probe, is served during the next one."""
        deadline = time.monotonic() + SETTLE_MAX_S
        while time.monotonic() < deadline:
            cpu = self.group.cpu_seconds()
            time.sleep(0.5)
            if self.group.cpu_seconds() - cpu < SETTLED_CORES * 0.5:
                return


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # 127.0.0.1 only
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@contextlib.contextmanager
def serving(subject: Subject, limit: Limit, log: Path) -> Iterator[Server]:
    """Start the subject pinned to SERVER_CORE in its own cgroup; stop it after the block."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    group = Cgroup(f"wineq-bench-{os.getpid()}-{next(_group_ids)}", limit)
    argv = [*group.wrapper(), "taskset", "-c", str(SERVER_CORE), *subject.command(port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=subject.cwd,
            env=subject.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while True:
            if proc.poll() is not None or time.monotonic() - began > READY_TIMEOUT_S:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{subject.name} did not get ready (see {log}):\n{tail}")
            with contextlib.suppress(OSError):
                if _http(url + subject.ready_path, timeout=1.0)[0] == 200:
                    break
            time.sleep(0.1)
        ready_s = time.monotonic() - began
        status, answer = _http(url + subject.path, subject.body, timeout=30.0)
        if status != 200 or not subject.is_prediction(json.loads(answer)):
            raise RuntimeError(f"{subject.name} answered {status} {answer[:300]!r}, no prediction")
        yield Server(url, group, ready_s)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        group.remove()


def package_versions(python: str | Path, names: Sequence[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys;"
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    if not Path(python).exists():
        return {}
    out = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True)
    return dict(json.loads(out.stdout)) if out.returncode == 0 else {}


def mlserver_venv() -> tuple[Path, dict[str, Any]]:
    """build/bench/mlserver-venv with MLServer and its scikit-learn runtime at
    MLSERVER_VERSION and the project's scikit-learn; made on first use, reused after."""
    venv = RESULTS_DIR / "mlserver-venv"
    python = venv / "bin" / "python"
    sklearn = importlib.metadata.version("scikit-learn")
    want = {"mlserver": MLSERVER_VERSION, "mlserver-sklearn": MLSERVER_VERSION}
    names = [*want, "scikit-learn", "numpy", "uvicorn"]
    note = ""
    if {k: v for k, v in package_versions(python, names).items() if k in want} != want:
        print(f"installing MLServer {MLSERVER_VERSION} into {venv}", file=sys.stderr)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pins = [f"{name}=={version}" for name, version in want.items()]
        pip = [str(python), "-m", "pip", "install", "-q", *pins]
        if subprocess.run([*pip, f"scikit-learn=={sklearn}"], capture_output=True).returncode:
            note = f"scikit-learn {sklearn} does not install beside mlserver-sklearn; its own"
            done = subprocess.run(pip, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"MLServer did not install:\n{done.stderr[-3000:]}")
    versions = package_versions(python, names)
    if versions.get("scikit-learn") != sklearn and not note:
        note = f"scikit-learn {versions.get('scikit-learn')}, the project's is {sklearn}"
    return venv, {"versions": versions, "note": note}


def model_entry() -> Path:
    """The directory of wine_quality:latest in the model store."""
    home = Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")
    models = home / "models" / "wine_quality"
    latest = models / "latest"
    if not latest.is_file():
        raise SystemExit(f"no wine_quality:latest in {home}: run `make train-if-missing`")
    return models / latest.read_text().strip()


def batch_body(rows: int) -> bytes:
    """A ``/predict/batch`` body of the first ``rows`` real wines of the UCI files, red and
    white alternating (the files from WINEQ_TRAIN_DATA_DIR, else downloaded and checked)."""
    from training.data import load_wine_data, request_features
    from training.settings import TrainingSettings

    frame = load_wine_data(TrainingSettings.from_env()).frame
    reds, whites = frame[frame["wine_type"] == "red"], frame[frame["wine_type"] == "white"]
    pairs = zip(request_features(reds), request_features(whites), strict=False)  # 1,599 reds
    wines = [wine for pair in pairs for wine in pair]
    return json.dumps({"features_list": wines[:rows]}).encode()


def service_subject(name: str, root: Path, own_path: bool, batch_rows: int = 0) -> Subject:
    """The service from ``root``; with ``own_path`` its tree is first on PYTHONPATH (a
    worktree's package rather than the editable install). Asserts where bento comes from.
    With ``batch_rows`` it is sent ``/predict/batch`` of that many real wines."""
    env = {**os.environ, "OTEL_SDK_DISABLED": "true", "BENTOML_DO_NOT_TRACK": "True"}
    if own_path:
        env["PYTHONPATH"] = str(root)
    find = "import importlib.util as u; print(u.find_spec('bento.launch').origin)"
    where = subprocess.run(
        [sys.executable, "-c", find], cwd=root, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(where).resolve() == (root / "bento" / "launch.py").resolve(), (name, where)
    launch = ["-m", "bento.launch", "bento.service:WineQualityService",
              "--host", "127.0.0.1", "--port"]  # fmt: skip
    return Subject(
        name=name,
        cwd=root,
        env=env,
        command=lambda port: [sys.executable, *launch, str(port)],
        ready_path="/readyz",
        path="/predict/batch" if batch_rows else "/predict",
        body=batch_body(batch_rows) if batch_rows else SERVICE_BODY,
        is_prediction=(
            (lambda answer: isinstance(answer, list) and len(answer) == batch_rows)
            if batch_rows
            else (lambda answer: isinstance(answer.get("prediction"), int))
        ),
    )


def mlserver_subject(venv: Path, model_file: Path) -> Subject:
    """MLServer on ``model_file``: settings written into build/bench/mlserver per start."""
    folder = RESULTS_DIR / "mlserver"
    model_settings = {
        "name": "wine-quality",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "max_batch_size": 32,
        "max_batch_time": 0.005,
        "parameters": {"uri": str(model_file)},
    }
    (folder / "wine-quality").mkdir(parents=True, exist_ok=True)
    (folder / "wine-quality" / "model-settings.json").write_text(json.dumps(model_settings))

    def command(port: int) -> list[str]:
        settings = {
            "debug": False,
            "parallel_workers": 0,
            "metrics_endpoint": None,
            "host": "127.0.0.1",
            "http_port": port,
            "grpc_port": free_port(),
        }
        (folder / "settings.json").write_text(json.dumps(settings))
        return [str(venv / "bin" / "mlserver"), "start", str(folder)]

    return Subject(
        name="mlserver",
        cwd=folder,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_")},
        command=command,
        ready_path="/v2/models/wine-quality/ready",
        path="/v2/models/wine-quality/infer",
        body=V2_BODY,
        is_prediction=lambda answer: isinstance(answer["outputs"][0]["data"][0], int),
    )


def ceiling_subject() -> Subject:
    uvicorn = ["-m", "uvicorn", "scripts.asgi_ceiling:app", "--loop", "uvloop",
               "--http", "httptools", "--lifespan", "off", "--no-access-log",
               "--log-level", "warning", "--host", "127.0.0.1", "--port"]  # fmt: skip
    return Subject(
        name="asgi-ceiling",
        cwd=REPO_ROOT,
        env=dict(os.environ),
        command=lambda port: [sys.executable, *uvicorn, str(port)],
        ready_path="/",  # it answers every path
        path="/predict",
        body=SERVICE_BODY,
        is_prediction=lambda answer: isinstance(answer.get("prediction"), int),
    )


@contextlib.contextmanager
def worktree(ref: str) -> Iterator[tuple[Path, str]]:
    """A detached worktree of ``ref`` under build/bench/, removed after the block."""
    git = ["git", "-C", str(REPO_ROOT)]
    sha = subprocess.run(
        [*git, "rev-parse", "--short", ref], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = RESULTS_DIR / f"baseline-{sha}"
    if path.exists():
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)
    subprocess.run([*git, "worktree", "prune"], check=True)
    subprocess.run([*git, "worktree", "add", "--quiet", "--detach", str(path), sha], check=True)
    try:
        yield path, sha
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=True)
