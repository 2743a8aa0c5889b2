"""The image's launcher (BentoML's worker without its supervisor) serves and stops cleanly."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fixtures.server import start_server, wait_ready
from training.features import EXAMPLE_FEATURES

pytestmark = pytest.mark.integration


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
        assert "bentoml_service_request_total" in metrics

        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        assert server.process.wait(30) == 0
    finally:
        server.stop()
