"""Overload is refused quickly with 503 in the project's error shape; nothing accepted is lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fixtures.server import ServerFactory
from training.features import EXAMPLE_FEATURES

pytestmark = pytest.mark.integration


def test_requests_beyond_the_concurrency_limit_get_503_and_the_rest_succeed(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(WINEQ_MAX_CONCURRENCY="2")
    rows = [{**EXAMPLE_FEATURES, "alcohol": 9.0 + i * 0.01} for i in range(64)]

    def send(row: dict[str, object]) -> httpx.Response:
        body = {"features_list": [row] * 32}
        return httpx.post(f"{server.url}/predict/batch", json=body, timeout=60)

    with ThreadPoolExecutor(max_workers=48) as pool:
        responses = list(pool.map(send, rows))

    refused = [r for r in responses if r.status_code == 503]
    served = [r for r in responses if r.status_code == 200]
    assert len(refused) + len(served) == len(responses), {r.status_code for r in responses}
    assert refused, "48 concurrent clients never exceeded a limit of 2"
    assert served, "nothing was served"
    for response in refused:
        assert response.json()["error"] == "overloaded"
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-model-version"] != "unknown"
    # Every accepted request got all its answers.
    assert all(len(r.json()) == 32 for r in served)
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_work_beyond_what_the_worker_answers_in_time_is_refused_on_arrival(
    server_factory: ServerFactory,
) -> None:
    # A latency target no batch can meet: the adaptive limit shrinks to its floor, and
    # a worker with work in progress refuses more at once (before reading the body),
    # so nothing waits for BentoML's batcher to shed it.
    server = server_factory(WINEQ_ADMISSION_TARGET_MS="1")
    rows = [{**EXAMPLE_FEATURES, "alcohol": 9.0 + i * 0.001} for i in range(256)]

    def send(_: int) -> httpx.Response:
        return httpx.post(f"{server.url}/predict/batch", json={"features_list": rows}, timeout=60)

    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(send, range(160)))

    refused = [r for r in responses if r.status_code == 503]
    served = [r for r in responses if r.status_code == 200]
    assert len(refused) + len(served) == len(responses), {r.status_code for r in responses}
    assert refused, "32 clients of 256-row batches never exceeded a 1 ms target"
    assert served, "nothing was served"
    reasons = {d["reason"] for r in refused for d in r.json()["detail"]}
    assert reasons == {"as much work in progress as it answers within 1 ms"}, reasons
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert all(len(r.json()) == 256 for r in served)
    # Recovery: once the flood is over, the next request is served.
    assert send(0).status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
