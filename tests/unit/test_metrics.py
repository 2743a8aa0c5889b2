"""What a worker counts and the Prometheus text /metrics answers with."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bento.metrics import LATENCY_BUCKETS_S, Histogram, ServingMetrics
from training.features import FEATURE_NAMES


def _samples(metrics: ServingMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the rendered text, parsed by Prometheus' own parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render())
        for sample in family.samples
    }


def test_prediction_requests_are_counted_by_route_and_status_and_nothing_else() -> None:
    metrics = ServingMetrics()
    for path, status in [
        ("/predict", 200),
        ("/predict/", 200),
        ("/predict", 422),
        ("/predict/batch", 503),
        ("/readyz", 200),
        ("/metrics", 200),
        ("/predict", 0),  # the client left before any answer
    ]:
        metrics.answered(path, status, 0.003)

    samples = _samples(metrics)
    requests = {k[1]: v for k, v in samples.items() if k[0] == "wineq_requests_total"}
    assert requests == {
        (("route", "/predict"), ("status", "200")): 2,
        (("route", "/predict"), ("status", "422")): 1,
        (("route", "/predict/batch"), ("status", "503")): 1,
    }
    count = samples[("wineq_request_duration_seconds_count", (("route", "/predict"),))]
    assert count == 3


def test_latency_buckets_are_cumulative_with_the_sum() -> None:
    metrics = ServingMetrics()
    for seconds in (0.0005, 0.001, 0.0011, 0.2, 999.0):
        metrics.answered("/predict", 200, seconds)

    samples = _samples(metrics)
    route = ("route", "/predict")

    def bucket(le: str) -> float:
        return samples[("wineq_request_duration_seconds_bucket", (("le", le), route))]

    # A value on a bound falls in that bound's bucket (le: at most).
    assert bucket("0.001") == 2
    assert bucket("0.00125") == 3
    assert bucket("0.2") == 4
    assert bucket(str(LATENCY_BUCKETS_S[-1])) == 4
    assert bucket("+Inf") == 5
    total = samples[("wineq_request_duration_seconds_sum", (route,))]
    assert math.isclose(total, 0.0005 + 0.001 + 0.0011 + 0.2 + 999.0)


def test_model_calls_count_rows_classes_and_out_of_range_features() -> None:
    metrics = ServingMetrics()
    outside = np.zeros((3, len(FEATURE_NAMES)), dtype=bool)
    outside[0, FEATURE_NAMES.index("alcohol")] = True
    outside[2, FEATURE_NAMES.index("alcohol")] = True
    outside[2, FEATURE_NAMES.index("ph")] = True
    metrics.model_call(np.asarray([5, 6, 5]), outside)
    metrics.model_call(np.asarray([7]), np.zeros((1, len(FEATURE_NAMES)), dtype=bool))
    metrics.model_info("v1", "onnx")

    samples = _samples(metrics)
    assert samples[("wineq_predictions_total", (("quality", "5"),))] == 2
    assert samples[("wineq_predictions_total", (("quality", "6"),))] == 1
    assert samples[("wineq_predictions_total", (("quality", "7"),))] == 1
    assert samples[("wineq_out_of_distribution_total", (("feature", "alcohol"),))] == 2
    assert samples[("wineq_out_of_distribution_total", (("feature", "ph"),))] == 1
    assert samples[("wineq_model_call_rows_count", ())] == 2
    assert samples[("wineq_model_call_rows_sum", ())] == 4
    assert samples[("wineq_model_info", (("engine", "onnx"), ("model_version", "v1")))] == 1


def test_the_exporter_health_is_shown_once_an_exporter_reports_on_the_metrics() -> None:
    metrics = ServingMetrics()
    assert not any(name.startswith("wineq_exporter") for name, _ in _samples(metrics))
    metrics.exporter = SimpleNamespace(
        sends=4, failures=2, dropped=7, last_success=1_700_000_000.0, buffered=lambda: 3
    )

    samples = _samples(metrics)
    assert samples[("wineq_exporter_sends_total", ())] == 4
    assert samples[("wineq_exporter_failures_total", ())] == 2
    assert samples[("wineq_exporter_dropped_points_total", ())] == 7
    assert samples[("wineq_exporter_buffered_points", ())] == 3
    assert samples[("wineq_exporter_last_success_timestamp_seconds", ())] == 1_700_000_000.0


def test_label_values_are_escaped() -> None:
    metrics = ServingMetrics()
    metrics.model_info('v"1\\\n', "onnx")
    samples = _samples(metrics)
    assert samples[("wineq_model_info", (("engine", "onnx"), ("model_version", 'v"1\\\n')))] == 1


def test_a_histogram_copy_is_cumulative_and_ends_at_infinity() -> None:
    hist = Histogram((1.0, 2.0))
    for value in (0.5, 1.5, 1.5, 3.0):
        hist.observe(value)
    assert hist.cumulative() == [(1.0, 1), (2.0, 3), (math.inf, 4)]
