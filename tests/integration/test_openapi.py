"""The published API document tells the truth, and clients built from it work.

A property-based fuzzer (schemathesis) drives a real server from its own `/docs.json`
with its conformance checks on: every answer's status, content type, headers and body
must be what the document says.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import bentoml
import httpx
import pytest

from bento.settings import ServiceSettings
from tests.fixtures.cli import REPO_ROOT
from tests.fixtures.server import private_home, start_server, wait_ready
from training.features import EXAMPLE_FEATURES

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
ROUTES = ("/predict", "/predict/batch")


def test_the_document_lists_every_answer_of_the_prediction_routes(service_url: str) -> None:
    document = httpx.get(f"{service_url}/docs.json").json()
    for route in ROUTES:
        responses = document["paths"][route]["post"]["responses"]
        assert sorted(responses) == ["200", "400", "413", "415", "422", "500", "503"]
        for status, answer in responses.items():
            assert "X-Model-Version" in answer["headers"], (route, status)
            if status != "200":
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
        assert "Retry-After" in responses["503"]["headers"]
    error = document["components"]["schemas"]["ErrorResponse"]
    assert set(error["required"]) == {"error", "message", "detail"}
    batch = document["paths"]["/predict/batch"]["post"]["requestBody"]["content"]
    items = batch["application/json"]["schema"]["properties"]["features_list"]
    assert items["maxItems"] == ServiceSettings().max_batch_rows
    assert "/health" in document["paths"]


def test_the_document_describes_this_service(service_url: str) -> None:
    info = httpx.get(f"{service_url}/docs.json").json()["info"]
    version = httpx.get(f"{service_url}/readyz").headers["x-model-version"]
    assert info["title"] == "Wine quality"
    assert info["version"] == version
    assert "quality of a wine" in info["description"]
    assert version in info["description"]
    assert "docs/model.md" in info["description"]
    assert "created with BentoML" not in info["description"]


def test_fuzzing_the_server_from_its_document_finds_no_failure(service_url: str) -> None:
    # Every check but one: free SO2 must not exceed total SO2 (training/features.py), a
    # rule JSON Schema cannot state, so schema-valid bodies that break it get a documented
    # 422 that "positive data acceptance" would count as a failure.
    result = subprocess.run(
        [str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{service_url}/docs.json",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--max-examples", "40", "--workers", "1", "--seed", "1",
         "--no-color"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert "Tested: 7" in summary


def test_bentomls_client_calls_the_routes_with_keyword_arguments(service_url: str) -> None:
    with bentoml.SyncHTTPClient(service_url) as client:
        one = client.predict(features=EXAMPLE_FEATURES, request_id="kw-1")
        many = client.predict_batch(features_list=[EXAMPLE_FEATURES, EXAMPLE_FEATURES])
    assert one["request_id"] == "kw-1"
    assert 3 <= one["prediction"] <= 9
    assert [answer["prediction"] for answer in many] == [one["prediction"]] * 2


def test_health_answers_the_earlier_services_shape(service_url: str) -> None:
    before = int(time.time())
    response = httpx.get(f"{service_url}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert before <= body["timestamp"] <= int(time.time()) + 1
    assert body["checks"] == {"model_loaded": True, "model_verified": True, "draining": False}
    assert body["version"] == response.headers["x-model-version"]
    assert httpx.post(f"{service_url}/health").status_code == 405


@pytest.mark.parametrize(("keep_alive", "stays_open"), [(20, True), (5, False)])
def test_an_idle_connection_outlives_the_load_balancers_idle_timeout(
    bentoml_home: Path, trained_model_tag: str, tmp_path: Path, keep_alive: int, stays_open: bool
) -> None:
    # terraform/ sets the ALB's idle timeout below WINEQ_KEEP_ALIVE_S; idle here for longer
    # than a 5 s balancer timeout. With uvicorn's default (5 s) the worker would already
    # have closed the connection the balancer is about to reuse: the 502 this prevents.
    server = start_server(
        bentoml_home, trained_model_tag, tmp_path, launcher=True,
        env={"WINEQ_KEEP_ALIVE_S": str(keep_alive)},
    )  # fmt: skip
    try:
        wait_ready(server)
        host, port = server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request("GET", "/livez")
            first = connection.getresponse()
            first.read()
            assert first.status == 200
            opened = connection.sock
            time.sleep(7)
            try:
                connection.request("GET", "/livez")
                reused = connection.getresponse()
                reused.read()
                answered = reused.status == 200 and connection.sock is opened
            except (ConnectionError, http.client.HTTPException):
                answered = False
        finally:
            connection.close()
        assert answered is stays_open
    finally:
        server.stop()


def test_the_launcher_reads_its_keep_alive_from_the_serving_setting(
    bentoml_home: Path, trained_model_tag: str, tmp_path: Path
) -> None:
    env = private_home(bentoml_home, tmp_path / "home")
    planned = subprocess.run(
        [sys.executable, "-m", "bento.launch", "--print-plan"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True,
        env={**env, "WINEQ_KEEP_ALIVE_S": "91", "WINEQ_MODEL_TAG": trained_model_tag},
    )  # fmt: skip
    args = json.loads(planned.stdout.strip().splitlines()[-1])["worker_args"]
    assert args[args.index("--timeout-keep-alive") + 1] == "91"
