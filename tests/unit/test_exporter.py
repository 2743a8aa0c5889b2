"""The CloudWatch exporter in-process: what it reads from the worker's counts, the data
points it makes of it, the buffer, retries and failure reporting, and a real send to the
moto server.  tests/integration/test_cloudwatch.py checks a real worker end to end."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from prometheus_client.parser import text_string_to_metric_families

from bento.exporter import (
    DEFAULT_COMBINATIONS_LIMIT,
    DEFAULT_METRICS,
    EXPORTER_FAILURES,
    LATENCY,
    MAX_DATA_PER_CALL,
    MAX_RETRIES,
    MAX_VALUES_PER_DATUM,
    METRICS,
    OUT_OF_DISTRIBUTION_BY_FEATURE,
    PREDICTIONS_BY_CLASS,
    REFUSALS_503,
    ROLLUPS,
    ROWS_PER_MODEL_CALL,
    CloudWatchExporter,
    Point,
    classify,
    enabled_metrics,
    first_call,
    increase,
    read_counts,
    to_data,
)
from bento.metrics import ROUTES, ServingMetrics
from bento.settings import ServiceSettings
from training.features import FEATURE_NAMES

REPO = Path(__file__).resolve().parents[2]
VERSION = "20250101-abcdef"
BASE = (("Service", "wine_quality"), ("ModelVersion", VERSION))
NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Every path a worker answers that is not a prediction route.
NOT_COUNTED = ("/readyz", "/livez", "/healthz", "/health", "/metrics", "/docs.json", "/", "/x")


class Worker:
    """What a worker counts, fed the way the request log middleware and the predictor
    feed it."""

    def __init__(self) -> None:
        self.metrics = ServingMetrics()

    def request(self, path: str, status: int, seconds: float = 0.004) -> None:
        """One answered request."""
        self.metrics.answered(path, status, seconds)

    def model_call(self, classes: list[int], outside: list[list[bool]] | None = None) -> None:
        """One model call predicting ``classes`` (one per row)."""
        flags = outside or [[False] * len(FEATURE_NAMES) for _ in classes]
        self.metrics.model_call(np.asarray(classes), np.asarray(flags, dtype=bool))


def _exporter(worker: Worker, **options: Any) -> CloudWatchExporter:
    return CloudWatchExporter(
        namespace="WineQualityTest",
        service="wine_quality",
        model_version=lambda: VERSION,
        metrics=worker.metrics,
        **options,
    )


def _per_version(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The data of the model version (not the Service-only rollups)."""
    return [d for d in data if any(x["Name"] == "ModelVersion" for x in d["Dimensions"])]


def _rollups(data: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Service-only rollups by metric name."""
    rolled = [d for d in data if d not in _per_version(data)]
    assert all(d["Dimensions"] == [{"Name": "Service", "Value": "wine_quality"}] for d in rolled)
    return {d["MetricName"]: d for d in rolled}


def _by_name(data: list[dict[str, Any]]) -> dict[tuple[str, str | None], dict[str, Any]]:
    """The model version's data keyed by metric name and extra dimension (one datum each)."""
    keyed: dict[tuple[str, str | None], dict[str, Any]] = {}
    for datum in _per_version(data):
        extra = [d["Value"] for d in datum["Dimensions"] if d["Name"] not in dict(BASE)]
        keyed[(datum["MetricName"], extra[0] if extra else None)] = datum
    return keyed


def _combinations(data: list[dict[str, Any]]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (d["MetricName"], tuple(sorted((x["Name"], x["Value"]) for x in d["Dimensions"])))
        for d in data
    }


def _everything_happened(worker: Worker) -> None:
    """Every kind of answer on both routes, and model calls with every class and feature."""
    for route in ROUTES:
        for status in (200, 400, 413, 415, 422, 500, 503):
            worker.request(route, status)
    for quality in range(3, 10):
        worker.model_call([quality], [[True] * len(FEATURE_NAMES)])


# ------------------------------------------------------------------ reading the counts


def test_requests_are_counted_by_route_and_status_class_and_503s_on_their_own() -> None:
    worker = Worker()
    for status in (200, 200, 200, 422, 422):
        worker.request("/predict", status)
    worker.request("/predict/", 200)  # the guard serves a trailing slash as the route
    for status in (200, 413, 503, 503, 500):
        worker.request("/predict/batch", status)

    sent = to_data(read_counts(worker.metrics), base=BASE, enabled=DEFAULT_METRICS, timestamp=NOW)
    data = _by_name(sent)

    assert data[("Requests2xx", "/predict")]["Value"] == 4
    assert data[("Requests4xx", "/predict")]["Value"] == 2
    assert data[("Requests5xx", "/predict")]["Value"] == 0
    assert data[("Requests2xx", "/predict/batch")]["Value"] == 1
    assert data[("Requests4xx", "/predict/batch")]["Value"] == 1
    assert data[("Requests5xx", "/predict/batch")]["Value"] == 3
    assert data[(REFUSALS_503, None)]["Value"] == 2
    assert sum(data[(LATENCY, None)]["Counts"]) == 11
    # What the alarms read: the same counts under the Service dimension alone.
    rollups = _rollups(sent)
    assert set(rollups) == {"Requests5xx", LATENCY}
    assert rollups["Requests5xx"]["Value"] == 3
    assert rollups[LATENCY]["Counts"] == data[(LATENCY, None)]["Counts"]


def test_health_readiness_metrics_and_docs_routes_are_never_counted() -> None:
    worker = Worker()
    for path in NOT_COUNTED:
        worker.request(path, 200)
        worker.request(path, 503)

    data = to_data(read_counts(worker.metrics), base=BASE, enabled=DEFAULT_METRICS, timestamp=NOW)

    assert all(d.get("Value", 0) == 0 for d in data), data
    assert LATENCY not in {d["MetricName"] for d in data}
    routes = {x["Value"] for d in data for x in d["Dimensions"] if x["Name"] == "Route"}
    assert routes == set(ROUTES)


def test_latency_is_a_distribution_of_bucket_bounds_in_milliseconds() -> None:
    worker = Worker()
    for seconds in (0.0009, 0.0031, 0.0031, 0.0049, 0.2, 99.0):
        worker.request("/predict", 200, seconds)

    (latency,) = [
        d
        for d in _per_version(
            to_data(read_counts(worker.metrics), base=BASE, enabled=DEFAULT_METRICS, timestamp=NOW)
        )
        if d["MetricName"] == LATENCY
    ]

    assert latency["Unit"] == "Milliseconds"
    # Each value is the upper bound of its bucket; past the last bound, the last bound.
    assert dict(zip(latency["Values"], latency["Counts"], strict=True)) == {
        1.0: 1,
        4.0: 2,
        5.0: 1,
        200.0: 1,
        60_000.0: 1,
    }


def test_rows_per_model_call_and_predictions_by_class_come_from_the_model_calls() -> None:
    worker = Worker()
    worker.model_call([5])
    worker.model_call([5, 6, 6, 7, 5])
    worker.model_call([6] * 40)
    enabled = enabled_metrics(ServiceSettings(metrics_by_class=True))

    data = to_data(read_counts(worker.metrics), base=BASE, enabled=enabled, timestamp=NOW)
    keyed = _by_name(data)

    rows = keyed[(ROWS_PER_MODEL_CALL, None)]
    # Exact up to 16 rows; 40 rows fall in the (32, 40] bucket.
    assert dict(zip(rows["Values"], rows["Counts"], strict=True)) == {1.0: 1, 5.0: 1, 40.0: 1}
    by_class = {q: keyed[(PREDICTIONS_BY_CLASS, q)]["Value"] for q in ("5", "6", "7")}
    assert by_class == {"5": 3, "6": 42, "7": 1}
    assert sum(by_class.values()) == 46


def test_out_of_distribution_values_are_counted_by_feature_when_asked() -> None:
    worker = Worker()
    outside = [[name == "alcohol" for name in FEATURE_NAMES], [True] * len(FEATURE_NAMES)]
    worker.model_call([5, 6], outside)

    counted = read_counts(worker.metrics)
    default = _by_name(to_data(counted, base=BASE, enabled=DEFAULT_METRICS, timestamp=NOW))
    enabled = enabled_metrics(ServiceSettings(metrics_by_feature=True))
    opted_in = _by_name(to_data(counted, base=BASE, enabled=enabled, timestamp=NOW))

    assert not any(name == OUT_OF_DISTRIBUTION_BY_FEATURE for name, _ in default)
    assert opted_in[(OUT_OF_DISTRIBUTION_BY_FEATURE, "alcohol")]["Value"] == 2
    assert opted_in[(OUT_OF_DISTRIBUTION_BY_FEATURE, "ph")]["Value"] == 1


def test_the_increase_since_the_last_read_is_what_is_sent() -> None:
    worker = Worker()
    worker.request("/predict", 200)
    first = read_counts(worker.metrics)
    worker.request("/predict", 200)
    worker.request("/predict", 422)

    counted = increase(read_counts(worker.metrics), first)
    data = _by_name(to_data(counted, base=BASE, enabled=DEFAULT_METRICS, timestamp=NOW))

    assert data[("Requests2xx", "/predict")]["Value"] == 1
    assert data[("Requests4xx", "/predict")]["Value"] == 1
    assert sum(data[(LATENCY, None)]["Counts"]) == 2


# ------------------------------------------------------------------ cost and API limits


def test_the_default_set_stays_within_ten_combinations_per_model_version() -> None:
    worker = Worker()
    _everything_happened(worker)
    counted = read_counts(worker.metrics)
    counted[(EXPORTER_FAILURES, (), None)] = 3.0

    sent = to_data(counted, base=BASE, enabled=DEFAULT_METRICS, timestamp=NOW)
    default = _combinations(_per_version(sent))
    everything = enabled_metrics(ServiceSettings(metrics_by_class=True, metrics_by_feature=True))
    opted_in = _combinations(
        _per_version(to_data(counted, base=BASE, enabled=everything, timestamp=NOW))
    )

    assert len(default) <= DEFAULT_COMBINATIONS_LIMIT, sorted(default)
    assert {name for name, _ in default} == DEFAULT_METRICS
    assert len(opted_in) == len(default) + 7 + len(FEATURE_NAMES)
    # Rollups: one combination each per service, not per model version.
    assert len(_combinations(sent)) - len(default) == len(ROLLUPS) == 2


def test_a_distribution_with_many_distinct_values_is_split_at_the_api_limit() -> None:
    cumulative = {bound: float(i + 1) for i, bound in enumerate(range(1, 400))}
    counted: dict[Point, float] = {
        (ROWS_PER_MODEL_CALL, (), float(bound)): n for bound, n in cumulative.items()
    }

    data = [
        d
        for d in to_data(counted, base=BASE, enabled=DEFAULT_METRICS, timestamp=NOW)
        if d["MetricName"] == ROWS_PER_MODEL_CALL
    ]

    assert [len(d["Values"]) for d in data] == [150, 150, 99]
    assert all(len(d["Values"]) <= MAX_VALUES_PER_DATUM for d in data)
    assert sum(sum(d["Counts"]) for d in data) == 399


def test_one_call_takes_at_most_the_api_limit_of_data() -> None:
    small = {"Dimensions": [{}, {}], "Value": 1.0}
    wide = {"Dimensions": [{}, {}], "Values": [1.0] * 150}

    assert first_call([small] * 2_500) == MAX_DATA_PER_CALL
    assert first_call([small] * 12) == 12
    # A megabyte of distribution values needs more than one call.
    assert 500 > first_call([wide] * 500) > 1


# ------------------------------------------------------------------ failures


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutMetricData",
    )


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (_client_error("Throttling", 400), "retry"),
        (_client_error("InternalServiceError", 500), "retry"),
        (_client_error("ServiceUnavailable", 503), "retry"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "retry"),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"), "retry"),
        # Sent, no answer: it may have been stored, so it is not sent twice.
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), "unconfirmed"),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:9"), "unconfirmed"),
        (_client_error("InvalidClientTokenId", 403), "keep"),
        (_client_error("AccessDenied", 403), "keep"),
        (NoCredentialsError(), "keep"),
        (_client_error("InvalidParameterValue", 400), "reject"),
        (_client_error("MissingParameter", 400), "reject"),
    ],
)
def test_failures_are_retried_kept_or_dropped_by_kind(error: Exception, outcome: str) -> None:
    assert classify(error) == outcome


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_cloudwatch_unreachable_keeps_a_bounded_buffer_and_counts_what_it_drops(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", _closed_port())
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    worker = Worker()
    exporter = _exporter(worker, buffer_points=20, flush_timeout_s=0.5)
    caplog.set_level(logging.INFO, logger="bentoml.wineq.exporter")

    for interval in range(6):
        worker.request("/predict", 200)
        exporter.collect()
        started = time.monotonic()
        exporter.send(time.monotonic() + 0.3)
        assert time.monotonic() - started < 1.5, "a send outlived its deadline"
        assert len(exporter.buffer) <= 20, interval

    assert exporter.sends == 0
    assert exporter.failures >= 6
    # Six intervals of eleven points (six request counts, 503s, failures, latency, and
    # the 5xx and latency rollups) in a buffer of twenty: forty-six dropped, oldest first.
    assert exporter.dropped == 46
    assert exporter.buffer[-1]["Timestamp"] >= exporter.buffer[0]["Timestamp"]
    failing = [r for r in caplog.records if "failing" in r.getMessage()]
    assert len(failing) == 1, [r.getMessage() for r in caplog.records]
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(worker.metrics.render())
        for s in family.samples
    }
    assert samples["wineq_exporter_failures_total"] == exporter.failures
    assert samples["wineq_exporter_dropped_points_total"] == 46
    assert samples["wineq_exporter_buffered_points"] == 20


def test_an_outage_is_retried_a_few_times_then_waited_out_until_the_next_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", _closed_port())
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    worker = Worker()
    exporter = _exporter(worker)
    worker.request("/predict", 200)
    exporter.collect()

    exporter.send(time.monotonic() + 60, interruptible=False)

    assert exporter.failures == MAX_RETRIES + 1, "each attempt builds and signs a request"
    assert exporter.buffer, "the points wait for the next interval"


class Relay:
    """CloudWatch coming back: a TCP relay to the moto server, started on a port that
    refused connections until then."""

    def __init__(self, port: int, target: str) -> None:
        host, target_port = target.removeprefix("http://").split(":")
        self.target = (host, int(target_port))
        self.listener = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def test_a_batch_reaches_cloudwatch_and_a_recovery_is_logged_once(
    aws_env: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    endpoint = _closed_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    worker = Worker()
    namespace = f"WineQualityTest{time.monotonic_ns()}"
    exporter = _exporter(worker, flush_timeout_s=1.0)
    exporter.namespace = namespace
    caplog.set_level(logging.INFO, logger="bentoml.wineq.exporter")
    # First CloudWatch is away: the interval's data stays in the buffer.
    worker.request("/predict", 200)
    worker.request("/predict/batch", 422)
    exporter.collect(NOW)
    exporter.send(time.monotonic() + 0.2)
    assert exporter.failures > 0
    assert exporter.buffer
    # Back again: the next interval sends both intervals' data in one call.
    relay = Relay(int(endpoint.rsplit(":", 1)[1]), aws_env)
    try:
        worker.request("/predict", 200)
        exporter.collect(NOW + timedelta(minutes=1))
        exporter.send(time.monotonic() + 5)
    finally:
        relay.close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)

    assert exporter.sends == 1
    assert not exporter.buffer
    assert exporter.last_success is not None
    cloudwatch = boto3.client("cloudwatch")
    served = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName="Requests2xx",
        Dimensions=[
            *({"Name": k, "Value": v} for k, v in BASE),
            {"Name": "Route", "Value": "/predict"},
        ],
        StartTime=NOW - timedelta(hours=1),
        EndTime=NOW + timedelta(hours=1),
        Period=7200,
        Statistics=["Sum"],
    )["Datapoints"]
    assert sum(point["Sum"] for point in served) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "failing" in m]) == 1, messages
    assert len([m for m in messages if "recovered" in m]) == 1, messages


def test_stop_sends_the_last_interval_within_the_flush_timeout(aws_env: str) -> None:
    import boto3

    worker = Worker()
    exporter = _exporter(worker, interval_s=3600, flush_timeout_s=2.0)
    exporter.namespace = f"WineQualityTest{time.monotonic_ns()}"
    exporter.start()
    worker.request("/predict", 200)
    worker.model_call([5])

    started = time.monotonic()
    assert exporter.close()
    assert time.monotonic() - started < 2.0
    assert exporter.sends == 1
    names = {
        m["MetricName"]
        for m in boto3.client("cloudwatch").list_metrics(Namespace=exporter.namespace)["Metrics"]
    }
    assert names == DEFAULT_METRICS


# ------------------------------------------------------------------ one definition, one table


def test_the_readme_table_lists_exactly_the_metrics_the_exporter_sends() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Metrics and logs in CloudWatch", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| ([^|]+) \|", section, re.M)
    table = {name: (unit, dims.strip()) for name, unit, dims in rows}

    expected = {m.name: (m.unit, ", ".join(f"`{d}`" for d in m.dimensions)) for m in METRICS}
    assert table == expected


def test_every_metric_is_described_and_opt_in_settings_exist() -> None:
    assert len({m.name for m in METRICS}) == len(METRICS)
    for metric in METRICS:
        assert metric.description
        assert metric.dimensions[:2] == ("Service", "ModelVersion")
        if metric.setting is not None:
            assert ServiceSettings.model_fields[metric.setting].default is False
    assert Counter(m.unit for m in METRICS)["Milliseconds"] == 1
