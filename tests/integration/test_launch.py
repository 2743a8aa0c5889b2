"""The image's launcher starts BentoML's worker exactly as `bentoml serve` would, minus the
supervisor, serves, and stops cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from bento.bentoml_adapter import WORKER_MODULE
from tests.fixtures.cli import REPO_ROOT
from tests.fixtures.server import SERVICE, start_server, wait_ready
from training.features import EXAMPLE_FEATURES

pytestmark = pytest.mark.integration

# Non-default server options, given to both starts alike.
OPTIONS = ("--timeout-keep-alive", "61", "--timeout-graceful-shutdown", "7", "--timeout", "20")


def _without_fd(args: list[str]) -> list[str]:
    """A worker command line with the socket's file descriptor number blanked."""
    at = args.index("--fd")
    return [*args[: at + 1], "<fd>", *args[at + 2 :]]


def test_the_launchers_worker_gets_the_options_and_environment_serve_gives(
    bentoml_home: Path, trained_model_tag: str, tmp_path: Path
) -> None:
    server = start_server(bentoml_home, trained_model_tag, tmp_path, args=OPTIONS)
    try:
        wait_ready(server)
        (worker,) = [
            child
            for child in psutil.Process(server.process.pid).children(recursive=True)
            if WORKER_MODULE in child.cmdline()
        ]
        cmdline = worker.cmdline()
        served_args = cmdline[cmdline.index(WORKER_MODULE) + 1 :]
        served_env = worker.environ()
        port = server.url.rsplit(":", 1)[1]
    finally:
        assert server.stop() == 0
    # What `bentoml serve` added to the environment the test gave it (read from the
    # test's side: a supervisor that sets its process title overwrites its own
    # /proc/<pid>/environ).
    added_by_serve = {
        key: value for key, value in served_env.items() if server.env.get(key) != value
    }

    # The same environment as the `bentoml serve` process, the same options.
    planned = subprocess.run(
        [sys.executable, "-m", "bento.launch", SERVICE, "--host", "127.0.0.1", "--port", port,
         *OPTIONS, "--print-plan"],
        cwd=REPO_ROOT, env=server.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr[-3000:]
    plan = json.loads(planned.stdout.strip().splitlines()[-1])

    assert _without_fd(plan["worker_args"]) == _without_fd(served_args)
    assert plan["env"] == added_by_serve
    for option in OPTIONS[::2]:
        assert option in plan["worker_args"], f"{option} did not reach the worker"


def test_launcher_serves_one_process_and_exits_zero_on_sigterm(
    bentoml_home: Path, trained_model_tag: str, tmp_path: Path
) -> None:
    server = start_server(
        bentoml_home, trained_model_tag, tmp_path, launcher=True, env={"WINEQ_DRAIN_SECONDS": "1"}
    )
    try:
        wait_ready(server)
        assert psutil.Process(server.process.pid).children() == [], "expected one process"
        response = httpx.post(f"{server.url}/predict", json={"features": EXAMPLE_FEATURES})
        assert response.status_code == 200
        assert response.headers["x-model-version"] == trained_model_tag.split(":")[1]
        metrics = httpx.get(f"{server.url}/metrics").text
        assert "wineq_predictions_total" in metrics
        assert 'wineq_requests_total{route="/predict",status="200"} 1.0' in metrics

        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        assert server.process.wait(30) == 0
    finally:
        server.stop()


def test_an_unknown_wineq_variable_stops_the_start_with_the_closest_name(
    bentoml_home: Path, trained_model_tag: str, tmp_path: Path
) -> None:
    server = start_server(
        bentoml_home, trained_model_tag, tmp_path, launcher=True,
        env={"WINEQ_MAX_BACH_ROWS": "64"},
    )  # fmt: skip
    try:
        assert server.process.wait(120) != 0
    finally:
        server.stop()
    log = server.log()
    assert "WINEQ_MAX_BACH_ROWS" in log
    assert "did you mean WINEQ_MAX_BATCH_ROWS?" in log
    assert "Traceback" not in log
