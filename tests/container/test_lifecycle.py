"""Start-up and shutdown of the image as ECS drives them: SIGTERM drain, model from S3."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bentoml
import httpx
import pytest

from scripts.container_image import Container, http_status, wait_ready
from tests.container.conftest import READY_TIMEOUT_S
from training.features import EXAMPLE_FEATURES
from training.mirror import MirrorLayout, push

pytestmark = pytest.mark.container

ECS_STOP_TIMEOUT_S = 30
CLIENT_THREADS = 6
BATCH_SIZE = 64
LOAD_BEFORE_STOP_S = 3.0
S3_PREFIX = "models"

ContainerFactory = Callable[..., Container]


def _batch_body() -> dict[str, Any]:
    return {"features_list": [dict(EXAMPLE_FEATURES)] * BATCH_SIZE}


def test_sigterm_completes_in_flight_requests_and_exits_zero(
    container_factory: ContainerFactory,
) -> None:
    container = container_factory()
    wait_ready(container, timeout=READY_TIMEOUT_S)
    stopping = threading.Event()
    statuses: list[int | str] = []
    readiness_during_stop: list[int | None] = []

    def client_loop() -> None:
        with httpx.Client(base_url=container.url, timeout=60) as client:
            while not stopping.is_set():
                try:
                    statuses.append(client.post("/predict/batch", json=_batch_body()).status_code)
                except httpx.HTTPError as exc:
                    statuses.append(type(exc).__name__)

    clients = [threading.Thread(target=client_loop) for _ in range(CLIENT_THREADS)]
    for thread in clients:
        thread.start()
    time.sleep(LOAD_BEFORE_STOP_S)
    sent_before_stop = len(statuses)

    def watch_readiness() -> None:
        while len(readiness_during_stop) < 200:
            status = http_status(f"{container.url}/readyz", timeout=1.0)
            readiness_during_stop.append(status)
            if status is None:
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_readiness)
    stopping.set()  # clients send nothing new; what they sent is in flight
    started = time.monotonic()
    watcher.start()
    subprocess.run(
        ["docker", "stop", "--time", str(ECS_STOP_TIMEOUT_S), container.id],
        check=True,
        capture_output=True,
    )
    stop_seconds = time.monotonic() - started
    for thread in clients:
        thread.join(60)
    watcher.join(10)

    state = container.state()
    assert sent_before_stop > 0, "no load reached the container before the stop"
    assert len(statuses) >= sent_before_stop
    assert all(s == 200 for s in statuses), statuses
    assert 503 in readiness_during_stop, f"/readyz never said 503: {readiness_during_stop}"
    assert stop_seconds < ECS_STOP_TIMEOUT_S, f"stopped after {stop_seconds:.1f} s (SIGKILL)"
    assert state["ExitCode"] == 0, container.logs()[-3000:]


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


def _s3_env(uri: str, endpoint: str) -> dict[str, str]:
    return {
        "WINEQ_MODEL_S3_URI": uri,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def test_starts_from_the_model_named_by_wineq_model_s3_uri(
    service_image: str,
    trained_model_tag: str,
    s3_env: str,
    moto_for_containers: str,
    docker_network: tuple[str, str],
    container_factory: ContainerFactory,
) -> None:
    version, uri = _pushed_copy(trained_model_tag, s3_env)
    container = container_factory(
        env=_s3_env(uri, moto_for_containers), extra_args=("--network", docker_network[0])
    )
    wait_ready(container, timeout=READY_TIMEOUT_S)
    response = httpx.post(
        f"{container.url}/predict", json={"features": dict(EXAMPLE_FEATURES)}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == version != trained_model_tag.split(":")[1]


def test_refuses_to_become_ready_when_the_s3_artifact_checksum_differs(
    service_image: str,
    trained_model_tag: str,
    s3_env: str,
    moto_for_containers: str,
    docker_network: tuple[str, str],
    container_factory: ContainerFactory,
) -> None:
    import boto3

    version, uri = _pushed_copy(trained_model_tag, s3_env)
    layout = MirrorLayout(s3_env, S3_PREFIX, trained_model_tag.split(":")[0])
    s3 = boto3.client("s3")
    key = layout.artifact_key(version)
    artifact = bytearray(s3.get_object(Bucket=s3_env, Key=key)["Body"].read())
    artifact[len(artifact) // 2] ^= 0xFF  # same size, different bytes
    s3.put_object(Bucket=s3_env, Key=key, Body=bytes(artifact))

    container = container_factory(
        env=_s3_env(uri, moto_for_containers), extra_args=("--network", docker_network[0])
    )
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
