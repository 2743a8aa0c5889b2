"""Readiness and graceful shutdown of a real `bentoml serve` process."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.server import ServerFactory, start_server
from training.features import EXAMPLE_FEATURES

pytestmark = pytest.mark.integration

DRAIN_SECONDS = 4.0


def test_readiness_waits_for_the_model(server_factory: ServerFactory) -> None:
    server = server_factory(wait=False)
    seen: list[int] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            seen.append(httpx.get(f"{server.url}/readyz", timeout=2).status_code)
        except httpx.TransportError:
            seen.append(0)  # not listening yet
        if seen[-1] == 200:
            break
        time.sleep(0.05)
    assert seen[-1] == 200
    # By the time /readyz said 200 the warm-up prediction is done and logged.
    log = server.log()
    assert "checksum verified" in log
    assert "Ready: serving" in log


def test_sigterm_drains_in_flight_requests_and_exits_zero(server_factory: ServerFactory) -> None:
    server = server_factory(WINEQ_DRAIN_SECONDS=str(DRAIN_SECONDS))
    body = {"features": EXAMPLE_FEATURES}
    statuses: list[int | str] = []
    stop_sending = threading.Event()
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop_sending.is_set():
                try:
                    code: int | str = client.post("/predict", json=body).status_code
                except httpx.TransportError as exc:
                    code = type(exc).__name__
                with lock:
                    statuses.append(code)

    clients = [threading.Thread(target=client_loop) for _ in range(16)]
    for thread in clients:
        thread.start()
    time.sleep(1.0)
    sent_before_signal = len(statuses)
    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()

    readiness: list[int | str] = []
    # Clients keep sending through most of the drain period: those requests must succeed.
    while time.monotonic() - signalled < DRAIN_SECONDS * 0.6:
        time.sleep(0.1)
        try:
            readiness.append(httpx.get(f"{server.url}/readyz", timeout=5).status_code)
        except httpx.TransportError as exc:
            readiness.append(type(exc).__name__)
    stop_sending.set()
    for thread in clients:
        thread.join(30)

    exit_code = server.process.wait(30)
    assert sent_before_signal > 0
    assert len(statuses) > sent_before_signal, "no request was in flight during the drain"
    assert set(statuses) == {200}, {s for s in statuses if s != 200}
    assert readiness
    assert set(readiness) == {503}, readiness
    assert exit_code == 0, server.log()[-3000:]


def test_a_tampered_model_never_becomes_ready(
    bentoml_home: Path, trained_model_tag: str, tmp_path: Path
) -> None:
    home = tmp_path / "bentoml_home"
    shutil.copytree(bentoml_home / "models", home / "models")
    name, version = trained_model_tag.split(":")
    artifact = home / "models" / name / version / "model.onnx"
    artifact.write_bytes(artifact.read_bytes()[:-16] + b"\x00" * 16)

    server = start_server(home, trained_model_tag, tmp_path)
    try:
        deadline = time.monotonic() + 90
        while "checksum mismatch" not in server.log():
            assert time.monotonic() < deadline, server.log()[-3000:]
            assert server.process.poll() is None, server.log()[-3000:]
            time.sleep(0.2)
        # Alive, but never ready, and predictions are refused rather than guessed.
        assert httpx.get(f"{server.url}/livez").status_code == 200
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        response = httpx.post(f"{server.url}/predict", json={"features": EXAMPLE_FEATURES})
        assert response.status_code == 503
        assert response.json()["error"] == "not_ready"
    finally:
        assert server.stop() == 0
