"""The README's first command works for a newcomer: train if needed, then serve on :3000."""

from __future__ import annotations

import os
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
        wait_ready(RunningServer(process, url, tmp_path / "make-serve.log"), timeout=180)
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
