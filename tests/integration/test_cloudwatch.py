"""The exporter and the log shipping of a real worker, against the moto server's CloudWatch
and CloudWatch Logs APIs: what arrives equals what was served, CloudWatch away never
changes an answer, shutdown stays bounded, bad settings stop the start."""

from __future__ import annotations

import http.server
import json
import re
import signal
import socket
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bento.exporter import DEFAULT_COMBINATIONS_LIMIT, DEFAULT_METRICS, ROLLUPS
from tests.fixtures.server import RunningServer, ServerFactory, start_server, wait_ready
from training.features import EXAMPLE_FEATURES

pytestmark = pytest.mark.integration

INTERVAL_S = "1"
DRAIN_S = 1.0
# The exact-count tests give CloudWatch calls a long read timeout (it follows the flush
# timeout): a loaded machine slowing moto down must not leave a send unconfirmed.
PATIENT_FLUSH_S = "5"
FLUSH_S = 2.0
# After the drain and the flush: the server's own stop and the interpreter's exit.
EXIT_MARGIN_S = 5.0
# A value only request bodies carry: no log event may contain it.
BODY_MARKER = 0.56789123


def _namespace() -> str:
    return f"WineQualityTest{uuid.uuid4().hex[:8]}"


def _exporter_env(namespace: str, **more: str) -> dict[str, str]:
    return {
        "WINEQ_METRICS_NAMESPACE": namespace,
        "WINEQ_METRICS_INTERVAL_S": INTERVAL_S,
        "WINEQ_DRAIN_SECONDS": str(DRAIN_S),
        "WINEQ_METRICS_FLUSH_TIMEOUT_S": PATIENT_FLUSH_S,
        **more,
    }


def _prometheus(server: RunningServer, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} not on /metrics"
    return float(match.group(1))


class CloudWatch:
    """Reads what the moto server's CloudWatch holds for one namespace and model version."""

    def __init__(self, namespace: str, version: str) -> None:
        import boto3

        self.client = boto3.client("cloudwatch")
        self.namespace = namespace
        self.base = [
            {"Name": "Service", "Value": "wine_quality"},
            {"Name": "ModelVersion", "Value": version},
        ]

    def stat(self, metric: str, statistic: str = "Sum", **extra: str) -> float:
        """``statistic`` of ``metric`` over the last hour, summed over its datapoints."""
        return self._stat(self.base, metric, statistic, **extra)

    def rollup(self, metric: str, statistic: str = "Sum") -> float:
        """The same for the series under the Service dimension alone (what alarms read).

        moto matches a query's dimensions as a subset (CloudWatch matches them exactly),
        so it adds the model version's own series: with one version, the rollup is half.
        """
        return self._stat(self.base[:1], metric, statistic) / 2

    def _stat(self, base: list[dict[str, str]], metric: str, statistic: str, **extra: str) -> float:
        now = datetime.now(UTC)
        points = self.client.get_metric_statistics(
            Namespace=self.namespace,
            MetricName=metric,
            Dimensions=[*base, *({"Name": k, "Value": v} for k, v in extra.items())],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=5),
            Period=7200,
            Statistics=[statistic],
        )["Datapoints"]
        return float(sum(point[statistic] for point in points))

    def combinations(self) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        """Distinct metric/dimension combinations in the namespace."""
        return {
            (m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
            for m in self.client.list_metrics(Namespace=self.namespace)["Metrics"]
        }

    def per_version(self) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        """The combinations that carry the model version."""
        return {c for c in self.combinations() if dict(c[1]).get("ModelVersion")}


def _wait_for_sends(server: RunningServer, sends: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _prometheus(server, "wineq_exporter_sends_total") < sends:
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.2)


def test_cloudwatch_receives_exactly_what_was_served(
    server_factory: ServerFactory, aws_env: str
) -> None:
    namespace = _namespace()
    server = server_factory(**_exporter_env(namespace))
    single = {"features": EXAMPLE_FEATURES}
    batch = {"features_list": [EXAMPLE_FEATURES] * 5}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = client.post("/predict", json=single)
        version = first.headers["x-model-version"]
        statuses = [first.status_code]
        statuses += [client.post("/predict", json=single).status_code for _ in range(2)]
        statuses += [client.post("/predict/batch", json=batch).status_code for _ in range(2)]
        statuses += [
            client.post("/predict", json={"features": {"alcohol": -1}}).status_code,
            client.post("/predict", json={}).status_code,
        ]
        too_many = {"features_list": [EXAMPLE_FEATURES] * 257}
        statuses.append(client.post("/predict/batch", json=too_many).status_code)
        # Never counted as requests.
        for path in ("/readyz", "/livez", "/healthz", "/health", "/metrics", "/docs.json"):
            client.get(path)
        client.post("/nowhere", json=single)
    assert statuses == [200] * 5 + [422, 422, 413]
    # Batches go out while serving, not only at the end.
    _wait_for_sends(server, 2)
    assert server.stop() == 0  # the last interval goes out in the final flush

    cloudwatch = CloudWatch(namespace, version)
    assert cloudwatch.stat("Requests2xx", Route="/predict") == 3
    assert cloudwatch.stat("Requests2xx", Route="/predict/batch") == 2
    assert cloudwatch.stat("Requests4xx", Route="/predict") == 2
    assert cloudwatch.stat("Requests4xx", Route="/predict/batch") == 1
    assert cloudwatch.stat("Requests5xx", Route="/predict") == 0
    assert cloudwatch.stat("Requests5xx", Route="/predict/batch") == 0
    assert cloudwatch.stat("Refusals503") == 0
    assert cloudwatch.stat("Latency", "SampleCount") == len(statuses)
    assert cloudwatch.stat("RowsPerModelCall", "Sum") == 3 + 2 * 5
    assert cloudwatch.stat("RowsPerModelCall", "SampleCount") == 5
    assert cloudwatch.stat("ExporterFailures") == 0
    # The series the alarms read, summed over versions and routes.
    assert cloudwatch.rollup("Latency", "SampleCount") == len(statuses)
    assert cloudwatch.rollup("Requests5xx") == 0
    per_version = cloudwatch.per_version()
    assert {name for name, _ in per_version} == DEFAULT_METRICS
    assert len(per_version) <= DEFAULT_COMBINATIONS_LIMIT, sorted(per_version)
    assert len(cloudwatch.combinations() - per_version) == len(ROLLUPS)


def test_predictions_by_class_and_log_events_arrive_without_a_request_body(
    server_factory: ServerFactory, aws_env: str
) -> None:
    import boto3

    group = f"/wineq/test-{uuid.uuid4().hex[:8]}"
    boto3.client("logs").create_log_group(logGroupName=group)
    namespace = _namespace()
    server = server_factory(
        **_exporter_env(
            namespace,
            WINEQ_METRICS_BY_CLASS="true",
            WINEQ_METRICS_BY_FEATURE="true",
            WINEQ_LOG_GROUP=group,
            WINEQ_LOG_EVERY_REQUEST="true",
        )
    )
    rows = [
        {**EXAMPLE_FEATURES, "alcohol": 8.0 + i * 0.5, "sulphates": BODY_MARKER} for i in range(12)
    ]
    rows.append({**EXAMPLE_FEATURES, "alcohol": 20.0, "sulphates": BODY_MARKER})
    request_id = f"rid-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answered = client.post(
            "/predict/batch", json={"features_list": rows, "request_id": request_id}
        )
        refused = client.post(
            "/predict", json={"features": {**EXAMPLE_FEATURES, "secret": BODY_MARKER}}
        )
    assert answered.status_code == 200
    assert refused.status_code == 422
    predictions = answered.json()
    version = predictions[0]["model_version"]
    assert server.stop() == 0

    cloudwatch = CloudWatch(namespace, version)
    by_class = Counter(str(p["prediction"]) for p in predictions)
    for quality in map(str, range(3, 10)):
        assert cloudwatch.stat("Predictions", Quality=quality) == by_class[quality], quality
    assert sum(cloudwatch.stat("Predictions", Quality=q) for q in by_class) == len(rows)
    flagged = Counter(feature for p in predictions for feature in p["out_of_distribution"])
    assert flagged["alcohol"] >= 1
    for feature, count in flagged.items():
        assert cloudwatch.stat("OutOfDistribution", Feature=feature) == count, feature

    events = boto3.client("logs").filter_log_events(logGroupName=group)["events"]
    lines = [json.loads(event["message"]) for event in events]
    assert all({"timestamp", "level", "logger", "message"} <= line.keys() for line in lines)
    requests = [line for line in lines if line.get("route")]
    assert [(line["route"], line["status"]) for line in requests] == [
        ("/predict/batch", 200),
        ("/predict", 422),
    ]
    assert requests[0]["request_id"] == request_id
    assert requests[0]["model_version"] == version
    assert any("Ready: serving" in line["message"] for line in lines)
    assert not [e["message"] for e in events if str(BODY_MARKER) in e["message"]]
    assert len({event["logStreamName"] for event in events}) == 1


# ------------------------------------------------------------------ CloudWatch away


class _ErrorAnswers(http.server.BaseHTTPRequestHandler):
    """CloudWatch answering every call with a server error."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(500)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(params=["unreachable", "answering errors"])
def cloudwatch_away(request: pytest.FixtureRequest) -> Iterator[str]:
    """An endpoint URL where CloudWatch is down: a closed port, or a server answering 500."""
    if request.param == "unreachable":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        return
    errors = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ErrorAnswers)
    threading.Thread(target=errors.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{errors.server_address[1]}"
    errors.shutdown()


@pytest.fixture(scope="module")
def reference_server(
    bentoml_home: Path, trained_model_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server without the exporter, to compare latencies with."""
    server = start_server(bentoml_home, trained_model_tag, tmp_path_factory.mktemp("reference"))
    wait_ready(server)
    yield server
    server.stop()


def test_cloudwatch_away_changes_no_answer_and_shutdown_stays_bounded(
    server_factory: ServerFactory,
    aws_env: str,
    cloudwatch_away: str,
    reference_server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", cloudwatch_away)
    buffer = 20
    server = server_factory(
        **_exporter_env(
            _namespace(),
            WINEQ_METRICS_INTERVAL_S="0.2",
            WINEQ_METRICS_BUFFER_POINTS=str(buffer),
            WINEQ_METRICS_FLUSH_TIMEOUT_S=str(FLUSH_S),
        )
    )
    body = {"features": EXAMPLE_FEATURES}
    latencies: dict[str, list[float]] = {"reference": [], "exporter": []}
    buffered: list[float] = []
    with httpx.Client(timeout=30) as client:
        for i in range(300):
            # Alternating, so both servers share the machine's noise.
            for label, target in (("reference", reference_server), ("exporter", server)):
                started = time.perf_counter()
                response = client.post(f"{target.url}/predict", json=body)
                latencies[label].append(time.perf_counter() - started)
                assert response.status_code == 200, (label, response.text)
            if i % 60 == 0:
                buffered.append(_prometheus(server, "wineq_exporter_buffered_points"))
    failures = _prometheus(server, "wineq_exporter_failures_total")
    dropped = _prometheus(server, "wineq_exporter_dropped_points_total")

    reference, exporter = (statistics.median(latencies[k]) for k in ("reference", "exporter"))
    assert exporter <= reference * 1.25 + 0.002, (reference, exporter)
    assert failures > 0
    assert dropped > 0
    assert _prometheus(server, "wineq_exporter_sends_total") == 0
    assert max(buffered) <= buffer, buffered
    failing = [line for line in server.log().splitlines() if "export failing" in line]
    assert len(failing) == 1, failing

    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(60) == 0
    assert time.monotonic() - signalled < DRAIN_S + FLUSH_S + EXIT_MARGIN_S


def test_expected_overload_refusals_are_counted_and_logged_once_without_traceback(
    server_factory: ServerFactory, aws_env: str
) -> None:
    namespace = _namespace()
    # A latency budget this small makes BentoML's batcher shed load with 503 (the guard's
    # own adaptive limit is off, so it leaves the shedding to the batcher).
    server = server_factory(
        **_exporter_env(namespace, WINEQ_BATCH_MAX_LATENCY_MS="10", WINEQ_ADMISSION_TARGET_MS="0")
    )
    body = {"features_list": [EXAMPLE_FEATURES] * 200}

    def send(_: int) -> httpx.Response:
        return httpx.post(f"{server.url}/predict/batch", json=body, timeout=60)

    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(send, range(64)))
    statuses = Counter(r.status_code for r in responses)
    version = responses[0].headers["x-model-version"]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0, "no request was shed: the test proves nothing"
    assert server.stop() == 0

    log = server.log()
    assert "Traceback" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    refusal_lines = [line for line in lines if line.get("status") == 503]
    assert len(refusal_lines) == statuses[503]
    assert {line["error"] for line in refusal_lines} == {"overloaded"}
    cloudwatch = CloudWatch(namespace, version)
    assert cloudwatch.stat("Refusals503") == statuses[503]
    assert cloudwatch.stat("Requests5xx", Route="/predict/batch") == statuses[503]
    assert cloudwatch.rollup("Requests5xx") == statuses[503]
    assert cloudwatch.stat("Requests2xx", Route="/predict/batch") == statuses[200]
    assert cloudwatch.stat("Latency", "SampleCount") == len(responses)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("WINEQ_METRICS_INTERVAL_S", "-1"), ("WINEQ_METRICS_NAMESPACE", "")],
)
def test_bad_exporter_settings_stop_the_start_naming_the_setting(
    bentoml_home: Path,
    trained_model_tag: str,
    tmp_path: Path,
    variable: str,
    value: str,
) -> None:
    server = start_server(
        bentoml_home, trained_model_tag, tmp_path, launcher=True, env={variable: value}
    )
    try:
        code = server.process.wait(120)
    finally:
        server.stop()
    assert code != 0
    log = server.log()
    assert f"error: invalid setting: {variable}=" in log
    assert "Traceback" not in log
