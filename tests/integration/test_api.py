"""The API contract against a real `bentoml serve` process."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from bento.settings import ServiceSettings
from training.data import request_features
from training.features import EXAMPLE_FEATURES
from training.train import model_matrix

pytestmark = pytest.mark.integration

MAX_ROWS = ServiceSettings().max_batch_rows


def test_predict_accepts_the_existing_clients_shape(service_url: str) -> None:
    body = {"features": {k: v for k, v in EXAMPLE_FEATURES.items() if k != "wine_type"}}
    response = httpx.post(f"{service_url}/predict", json={**body, "request_id": "client-7"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) >= {"prediction", "confidence", "probabilities", "model_version"}
    assert 3 <= answer["prediction"] <= 9
    assert answer["request_id"] == "client-7"
    assert answer["confidence"] == max(answer["probabilities"].values())
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert response.headers["x-model-version"] == answer["model_version"]


def test_every_response_carries_the_model_version(service_url: str, trained_model_tag: str) -> None:
    version = trained_model_tag.split(":")[1]
    for method, path in [
        ("GET", "/readyz"),
        ("GET", "/healthz"),
        ("GET", "/livez"),
        ("GET", "/metrics"),
        ("POST", "/predict"),
    ]:
        response = httpx.request(
            method,
            f"{service_url}{path}",
            content=b"{}",
            headers={"content-type": "application/json"},
        )
        assert response.headers.get("x-model-version") == version, path


def test_all_rows_of_both_files_are_accepted_and_match_offline_predictions(
    service_url: str, wine_frame: pd.DataFrame, forest: RandomForestClassifier
) -> None:
    records = request_features(wine_frame)
    chunks = [records[i : i + MAX_ROWS] for i in range(0, len(records), MAX_ROWS)]

    def send(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        response = httpx.post(
            f"{service_url}/predict/batch", json={"features_list": chunk}, timeout=60
        )
        assert response.status_code == 200, response.text[:500]
        answers: list[dict[str, Any]] = response.json()
        return answers

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = [a for batch in pool.map(send, chunks) for a in batch]

    assert len(answers) == len(wine_frame) == 6497
    served = np.array([a["prediction"] for a in answers])
    assert served.min() >= 3
    assert served.max() <= 9
    expected = forest.predict(model_matrix(wine_frame))
    mismatches = np.flatnonzero(served != expected)
    assert mismatches.size == 0, f"{mismatches.size} rows differ, first at {mismatches[:5]}"
    assert all(a["out_of_distribution"] == [] for a in answers)


def test_batch_answers_come_back_in_order_with_the_request_id(service_url: str) -> None:
    rows = [{**EXAMPLE_FEATURES, "alcohol": 8.0 + i * 0.5} for i in range(12)]
    response = httpx.post(
        f"{service_url}/predict/batch", json={"features_list": rows, "request_id": "b-1"}
    )
    assert response.status_code == 200
    answers = response.json()
    assert len(answers) == 12
    assert {a["request_id"] for a in answers} == {"b-1"}
    singles = [httpx.post(f"{service_url}/predict", json={"features": row}).json() for row in rows]
    assert [a["probabilities"] for a in answers] == [s["probabilities"] for s in singles]


def test_values_outside_the_training_range_are_predicted_and_flagged(service_url: str) -> None:
    # 20 % vol is a real wine's strength but above anything in the UCI data.
    features = {**EXAMPLE_FEATURES, "alcohol": 20.0, "residual_sugar": 200.0}
    response = httpx.post(f"{service_url}/predict", json={"features": features})
    assert response.status_code == 200
    assert response.json()["out_of_distribution"] == ["residual_sugar", "alcohol"]
    metrics = httpx.get(f"{service_url}/metrics").text
    assert re.search(r'wineq_out_of_distribution_total\{feature="alcohol"\} [1-9]', metrics)


def test_concurrent_requests_are_merged_by_adaptive_batching(service_url: str) -> None:
    def histogram(text: str) -> tuple[float, float]:
        total = count = 0.0
        for line in text.splitlines():
            if line.startswith("wineq_model_call_rows_sum "):
                total = float(line.rsplit(" ", 1)[1])
            elif line.startswith("wineq_model_call_rows_count "):
                count = float(line.rsplit(" ", 1)[1])
        return total, count

    before = histogram(httpx.get(f"{service_url}/metrics").text)
    body = {"features": EXAMPLE_FEATURES}

    def burst(_: int) -> int:
        with httpx.Client(base_url=service_url) as client:
            return sum(client.post("/predict", json=body).status_code == 200 for _ in range(40))

    with ThreadPoolExecutor(max_workers=32) as pool:
        ok = sum(pool.map(burst, range(32)))
    assert ok == 32 * 40
    after = histogram(httpx.get(f"{service_url}/metrics").text)
    rows, calls = after[0] - before[0], after[1] - before[1]
    assert rows == 32 * 40
    assert calls < rows, "every request ran as its own model call: no batching happened"


def test_metrics_expose_predictions_by_class_and_model_info(service_url: str) -> None:
    httpx.post(f"{service_url}/predict", json={"features": EXAMPLE_FEATURES})
    metrics = httpx.get(f"{service_url}/metrics").text
    assert re.search(r'wineq_predictions_total\{quality="\d"\} [1-9]', metrics)
    assert re.search(r'wineq_model_info\{engine="onnx",model_version="\w+"\} 1\.0', metrics)
    assert re.search(r'wineq_requests_total\{route="/predict",status="200"\} [1-9]', metrics)
    assert 'wineq_request_duration_seconds_bucket{le="+Inf",route="/predict"}' in metrics
