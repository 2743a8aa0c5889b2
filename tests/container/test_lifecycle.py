"""Start-up and shutdown of the image as ECS drives them: SIGTERM drain, model from S3."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import httpx
import pytest

from scripts.container_image import Container, http_status, wait_ready
from tests.container.conftest import READY_TIMEOUT_S
from tests.fixtures.moto import MOTO_AWS_ENV
from training.features import EXAMPLE_FEATURES
from training.mirror import MirrorLayout, push

pytestmark = pytest.mark.container

ECS_STOP_TIMEOUT_S = 30
# Set explicitly (the service's default is 5 s) so the test's timing does not follow it.
DRAIN_SECONDS = 4.0
# Clients stop sending this long before the drain can end, so every request they send
# has time to finish while the server still serves (a batch takes ~0.1-0.3 s at 0.25 vCPU).
STOP_SENDING_BEFORE_DRAIN_END_S = 1.5
CLIENT_THREADS = 6
BATCH_SIZE = 64
LOAD_BEFORE_STOP_S = 3.0
READINESS_POLL_S = 0.1
SIGTERM, SIGKILL = 15, 9
S3_PREFIX = "models"

ContainerFactory = Callable[..., Container]


def _batch_body() -> dict[str, Any]:
    return {"features_list": [dict(EXAMPLE_FEATURES)] * BATCH_SIZE}


@dataclass(frozen=True)
class Sent:
    """One request of the load: when it left and came back (epoch seconds), how it ended."""

    sent_at: float
    done_at: float
    status: int | str


def _signals_sent(container_id: str, since: float, until: float) -> list[tuple[float, int]]:
    """(epoch seconds, signal number) of each signal the Docker daemon sent the container."""
    out = subprocess.run(
        [
            "docker", "events", "--since", f"{since:.6f}", "--until", f"{until:.6f}",
            "--filter", f"container={container_id}", "--filter", "event=kill",
            "--format", "{{.TimeNano}} {{.Actor.Attributes.signal}}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout  # fmt: skip
    return [(int(nanos) / 1e9, int(signal)) for nanos, signal in map(str.split, out.splitlines())]


def test_sigterm_drains_serving_requests_then_exits_zero(
    container_factory: ContainerFactory,
) -> None:
    """ECS's stop: at SIGTERM /readyz turns 503 while requests keep being served for the
    drain period (those in flight at the signal and new ones), then the process exits 0."""
    container = container_factory(env={"WINEQ_DRAIN_SECONDS": str(DRAIN_SECONDS)})
    wait_ready(container, timeout=READY_TIMEOUT_S)
    lock = threading.Lock()
    sent: list[Sent] = []
    readiness: list[tuple[float, int | None]] = []
    send_until = [float("inf")]  # epoch seconds; set once the stop is requested
    stopped = threading.Event()

    def client_loop() -> None:
        with httpx.Client(base_url=container.url, timeout=30) as client:
            while (sent_at := time.time()) < send_until[0]:
                try:
                    status: int | str = client.post(
                        "/predict/batch", json=_batch_body()
                    ).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    sent.append(Sent(sent_at, time.time(), status))

    def watch_readiness() -> None:
        while not stopped.is_set():
            # None (no answer) is kept: under load at 0.25 vCPU a probe can be slow, and
            # once the server has stopped nothing answers.
            status = http_status(f"{container.url}/readyz", timeout=2.0)
            readiness.append((time.time(), status))
            time.sleep(READINESS_POLL_S)

    clients = [threading.Thread(target=client_loop) for _ in range(CLIENT_THREADS)]
    for thread in clients:
        thread.start()
    time.sleep(LOAD_BEFORE_STOP_S)
    watcher = threading.Thread(target=watch_readiness)
    watcher.start()
    stop_requested, stop_started = time.time(), time.monotonic()
    # The signal is sent after this moment, so the drain ends after this deadline.
    send_until[0] = stop_requested + DRAIN_SECONDS - STOP_SENDING_BEFORE_DRAIN_END_S
    stop = subprocess.run(
        ["docker", "stop", "--time", str(ECS_STOP_TIMEOUT_S), container.id],
        capture_output=True,
        text=True,
    )
    stop_seconds = time.monotonic() - stop_started
    stopped.set()
    for thread in clients:
        thread.join(60)
    watcher.join(10)
    state = container.state()
    logs = container.logs()[-3000:]
    assert stop.returncode == 0, stop.stderr

    signals = _signals_sent(container.id, stop_requested - 1, time.time() + 1)
    assert [number for _, number in signals] == [SIGTERM], f"signals sent: {signals}"
    sigterm_at = signals[0][0]
    completed_before = [r for r in sent if r.done_at < sigterm_at]
    in_flight = [r for r in sent if r.sent_at < sigterm_at < r.done_at]
    sent_after = [r for r in sent if r.sent_at > sigterm_at]
    failed = [r for r in sent if r.status != 200]
    assert completed_before, "no load reached the container before the signal"
    assert in_flight, "no request was in flight at the signal"
    assert sent_after, "no request was sent during the drain"
    assert len(sent) > len(completed_before)
    assert not failed, (
        f"{len(failed)} of {len(sent)} requests failed; (seconds after SIGTERM, status): "
        f"{[(round(r.sent_at - sigterm_at, 2), r.status) for r in failed[:8]]}\n{logs}"
    )
    answers = [(round(t - sigterm_at, 2), status) for t, status in readiness]
    first_503 = next((t for t, status in readiness if status == 503), None)
    assert first_503 is not None, f"/readyz never answered 503 after SIGTERM: {answers}"
    assert all(status != 200 for t, status in readiness if t >= first_503), answers
    assert stop_seconds >= DRAIN_SECONDS, f"exited {stop_seconds:.1f} s after the stop"
    assert stop_seconds < ECS_STOP_TIMEOUT_S, f"stopped after {stop_seconds:.1f} s"
    assert state["ExitCode"] == 0, logs
    assert state["OOMKilled"] is False, logs


def _pushed_copy(model_tag: str, bucket: str) -> tuple[str, str]:
    """Push a copy of the model under a new version (absent from the image); its version, URI.

    The copy is removed from the local store again, so `latest` stays the session's model.
    """
    source = bentoml.models.get(model_tag)
    with bentoml.models.create(
        source.tag.name, labels=dict(source.info.labels), metadata=dict(source.info.metadata)
    ) as copy:
        for path in Path(source.path).iterdir():
            if path.is_file() and path.name != "model.yaml":  # BentoML writes its own
                shutil.copyfile(path, copy.path_of(path.name))
    try:
        result = push(str(copy.tag), bucket, S3_PREFIX)
    finally:
        bentoml.models.delete(copy.tag)
    assert str(bentoml.models.get(f"{source.tag.name}:latest").tag) == model_tag
    return str(copy.tag.version), result.uri


@pytest.fixture
def start_from_s3(
    moto_for_containers: str,
    docker_network: tuple[str, str],
    container_factory: ContainerFactory,
) -> Callable[[str], Container]:
    """Start the image on the moto network with WINEQ_MODEL_S3_URI set to a given URI."""

    def start(uri: str) -> Container:
        env = {
            "WINEQ_MODEL_S3_URI": uri,
            "AWS_ENDPOINT_URL": moto_for_containers,
            **MOTO_AWS_ENV,
        }
        return container_factory(env=env, extra_args=("--network", docker_network[0]))

    return start


def test_starts_from_the_model_named_by_wineq_model_s3_uri(
    trained_model_tag: str, s3_env: str, start_from_s3: Callable[[str], Container]
) -> None:
    version, uri = _pushed_copy(trained_model_tag, s3_env)
    container = start_from_s3(uri)
    wait_ready(container, timeout=READY_TIMEOUT_S)
    response = httpx.post(
        f"{container.url}/predict", json={"features": dict(EXAMPLE_FEATURES)}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == version != trained_model_tag.split(":")[1]


def test_refuses_to_become_ready_when_the_s3_artifact_checksum_differs(
    trained_model_tag: str, s3_env: str, start_from_s3: Callable[[str], Container]
) -> None:
    import boto3

    version, uri = _pushed_copy(trained_model_tag, s3_env)
    layout = MirrorLayout(s3_env, S3_PREFIX, trained_model_tag.split(":")[0])
    s3 = boto3.client("s3")
    manifest = json.loads(
        s3.get_object(Bucket=s3_env, Key=layout.manifest_key(version))["Body"].read()
    )
    key = layout.artifact_key(version, manifest["artifact"]["filename"])
    artifact = bytearray(s3.get_object(Bucket=s3_env, Key=key)["Body"].read())
    artifact[len(artifact) // 2] ^= 0xFF  # same size, different bytes
    s3.put_object(Bucket=s3_env, Key=key, Body=bytes(artifact))

    container = start_from_s3(uri)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "Model not loaded" not in container.logs() and time.monotonic() < deadline:
        assert http_status(f"{container.url}/readyz") != 200
        time.sleep(0.5)
    logs = container.logs()
    assert "Model not loaded" in logs, logs[-3000:]
    assert "sha256" in logs, logs[-3000:]
    assert http_status(f"{container.url}/readyz") == 503
    assert http_status(f"{container.url}/livez") == 200
    response = httpx.post(
        f"{container.url}/predict", json={"features": dict(EXAMPLE_FEATURES)}, timeout=30
    )
    assert response.status_code == 503
