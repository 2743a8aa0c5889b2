"""The README's two commands work for a newcomer: `make serve` trains if needed, then
serves on :3000; `make test` sets up what the suite needs, and only what is missing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.fixtures.cli import REPO_ROOT
from tests.fixtures.server import RunningServer, free_port, wait_ready
from training.features import EXAMPLE_FEATURES

pytestmark = pytest.mark.integration


def test_make_serve_trains_when_the_store_is_empty_then_serves(
    tmp_path: Path, data_dir: Path
) -> None:
    port = free_port()  # `make serve` defaults to 3000; a test must not depend on it being free
    url = f"http://127.0.0.1:{port}"
    home = tmp_path / "bentoml_home"
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "WINEQ_TRAIN_DATA_DIR": str(data_dir),
        "WINEQ_TRAIN_N_ESTIMATORS": "40",  # a smaller forest keeps the test quick
    }
    log = (tmp_path / "make-serve.log").open("wb")
    process = subprocess.Popen(
        ["make", "serve", f"PORT={port}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: make, training, bentoml serve
    )
    try:
        wait_ready(RunningServer(process, url, tmp_path / "make-serve.log", env), timeout=180)
        response = httpx.post(f"{url}/predict", json={"features": EXAMPLE_FEATURES})
        assert response.status_code == 200
        assert {"prediction", "confidence", "probabilities", "model_version"} <= set(
            response.json()
        )
        trained = list((home / "models" / "wine_quality").glob("*/model.onnx"))
        assert len(trained) == 1, "make serve should have trained exactly one model"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
        log.close()


SETUP_TIMEOUT_S = 1800  # on a fresh machine the first set-up installs everything


def _make_setup() -> str:
    result = subprocess.run(
        ["make", "setup"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SETUP_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _image_id(tag: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _state(setup_output: str) -> dict[str, object]:
    """What a set-up would change: the install stamps, the base image, the engine."""
    base = re.search(r"base image (\S+) already present", setup_output)
    assert base, setup_output
    stamps = [REPO_ROOT / ".venv" / ".installed", REPO_ROOT / ".tools" / "venv" / ".installed"]
    return {
        **{str(stamp): stamp.stat().st_mtime_ns for stamp in stamps},
        "base image": _image_id(base.group(1)),
    }


def test_make_setup_once_done_changes_nothing() -> None:
    _make_setup()  # whatever the machine lacked is installed now
    done = _make_setup()
    before = _state(done)
    again = _make_setup()
    assert "system packages present" in again
    assert "installing" not in again
    assert "docker engine already running" in again
    assert "browser: " in again
    assert _state(again) == before
