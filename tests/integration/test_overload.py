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
