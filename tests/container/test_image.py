"""The built image, run like the Fargate task (0.25 vCPU, 512 MB, read-only root)."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from scripts.container_image import Container, memory_usage_mb
from training.artifacts import ONNX_INPUT_NAME, ONNX_PROBABILITIES_OUTPUT
from training.data import request_features
from training.features import EXAMPLE_FEATURES
from training.store import onnx_path
from training.train import model_matrix

pytestmark = pytest.mark.container

SINGLE_ROWS = 25
BATCH_ROWS = 200
LOAD_REQUESTS = 10_000
LOAD_THREADS = 8
MEMORY_SAMPLES = 5
MEMORY_LIMIT_MB = 400.0
# Allowed growth between the first sample under load and the last one.
MEMORY_GROWTH_MB = 25.0
PROBABILITY_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def sample(wine_frame: pd.DataFrame) -> pd.DataFrame:
    """Real rows of both wine types, in a fixed order."""
    return wine_frame.sample(n=BATCH_ROWS, random_state=7).reset_index(drop=True)


@pytest.fixture(scope="module")
def records(sample: pd.DataFrame) -> list[dict[str, float | str]]:
    """The sample as /predict `features` objects."""
    return request_features(sample)


@pytest.fixture(scope="module")
def offline_probabilities(trained_model_tag: str, sample: pd.DataFrame) -> np.ndarray:
    """The bundled model entry's probabilities for the sample, computed outside the image."""
    session = ort.InferenceSession(
        str(onnx_path(trained_model_tag)), providers=["CPUExecutionProvider"]
    )
    (probabilities,) = session.run(
        [ONNX_PROBABILITIES_OUTPUT], {ONNX_INPUT_NAME: model_matrix(sample)}
    )
    return np.asarray(probabilities)


def _check_answer(answer: dict[str, Any], expected: np.ndarray, version: str) -> None:
    labels = sorted(answer["probabilities"], key=int)
    got = np.array([answer["probabilities"][label] for label in labels])
    np.testing.assert_allclose(got, expected, atol=PROBABILITY_TOLERANCE)
    assert answer["prediction"] == int(labels[int(np.argmax(expected))])
    assert answer["model_version"] == version


def test_readyz_is_200_once_started(ready_container: Container) -> None:
    response = httpx.get(f"{ready_container.url}/readyz", timeout=5)
    assert response.status_code == 200


def test_predict_matches_the_offline_model(
    ready_container: Container,
    records: list[dict[str, float | str]],
    offline_probabilities: np.ndarray,
    trained_model_tag: str,
) -> None:
    version = trained_model_tag.split(":", 1)[1]
    with httpx.Client(base_url=ready_container.url, timeout=30) as client:
        for i in range(SINGLE_ROWS):
            response = client.post("/predict", json={"features": records[i], "request_id": f"r{i}"})
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["request_id"] == f"r{i}"
            _check_answer(answer, offline_probabilities[i], version)


def test_predict_batch_matches_the_offline_model_in_order(
    ready_container: Container,
    records: list[dict[str, float | str]],
    offline_probabilities: np.ndarray,
    trained_model_tag: str,
) -> None:
    body = {"features_list": records}
    response = httpx.post(f"{ready_container.url}/predict/batch", json=body, timeout=60)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert len(answers) == len(records)
    version = trained_model_tag.split(":", 1)[1]
    for answer, expected in zip(answers, offline_probabilities, strict=True):
        _check_answer(answer, expected, version)


def test_the_service_does_not_run_as_root(ready_container: Container, service_image: str) -> None:
    config_user = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Config.User}}", service_image],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert config_user.split(":")[0] not in ("", "0", "root"), config_user
    # Every process in the container, the server's PID 1 included.
    uids = subprocess.run(
        [
            "docker", "exec", ready_container.id, "python3", "-c",
            "import glob, json; print(json.dumps({p: [l.split()[1:3] for l in open(p)"
            " if l.startswith('Uid:')][0] for p in glob.glob('/proc/[0-9]*/status')}))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout  # fmt: skip
    real_and_effective = json.loads(uids)
    assert "/proc/1/status" in real_and_effective
    assert all("0" not in ids for ids in real_and_effective.values()), real_and_effective


def test_serves_with_a_read_only_root_file_system(ready_container: Container) -> None:
    # Started with --read-only and a tmpfs on /tmp only: ready and predicting proves the
    # start-up and the requests write nowhere else (an ECS task can set
    # readonlyRootFilesystem with one volume on /tmp).
    read_only = subprocess.run(
        ["docker", "inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", ready_container.id],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert read_only == "true"
    response = httpx.post(
        f"{ready_container.url}/predict", json={"features": dict(EXAMPLE_FEATURES)}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert httpx.get(f"{ready_container.url}/readyz", timeout=5).status_code == 200


def test_memory_stays_bounded_over_10000_requests(
    ready_container: Container, records: list[dict[str, float | str]]
) -> None:
    per_round = LOAD_REQUESTS // MEMORY_SAMPLES
    samples: list[float] = []
    failures: list[int] = []

    def send(client: httpx.Client, i: int) -> None:
        response = client.post("/predict", json={"features": records[i % len(records)]})
        if response.status_code != 200:
            failures.append(response.status_code)

    limits = httpx.Limits(max_connections=LOAD_THREADS)
    with (
        httpx.Client(base_url=ready_container.url, timeout=30, limits=limits) as client,
        ThreadPoolExecutor(LOAD_THREADS) as pool,
    ):
        for round_no in range(MEMORY_SAMPLES):
            start = round_no * per_round
            list(pool.map(lambda i: send(client, i), range(start, start + per_round)))
            samples.append(memory_usage_mb(ready_container))

    assert not failures, f"{len(failures)} requests failed: {sorted(set(failures))}"
    assert max(samples) < MEMORY_LIMIT_MB, samples
    assert samples[-1] - samples[0] <= MEMORY_GROWTH_MB, f"memory grows under load: {samples}"
