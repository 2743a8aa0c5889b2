"""The project's Prometheus metrics, exposed on /metrics next to BentoML's own.

``prometheus_client`` is imported inside the constructors, never at module import: a
BentoML worker sets ``PROMETHEUS_MULTIPROC_DIR`` after it imports the service module,
and the client chooses its (multiprocess) storage when it is first imported.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from training.features import FEATURE_NAMES

PREDICTIONS = "wineq_predictions"
OUT_OF_DISTRIBUTION = "wineq_out_of_distribution"
MODEL_INFO = "wineq_model_info"
MODEL_CALL_ROWS = "wineq_model_call_rows"
EXPORTER_SENDS = "wineq_exporter_sends"
EXPORTER_FAILURES = "wineq_exporter_failures"
EXPORTER_DROPPED = "wineq_exporter_dropped_points"
EXPORTER_LAST_SUCCESS = "wineq_exporter_last_success_timestamp_seconds"
EXPORTER_BUFFERED = "wineq_exporter_buffered_points"


def _decades(low: float, high: float) -> tuple[float, ...]:
    """Bounds from ``low`` to ``high`` with ten steps of about 25 % per decade (1, 1.25 ... 8)."""
    steps = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
    bounds: list[float] = []
    decade = low
    while decade < high:
        bounds.extend(round(decade * step, 9) for step in steps if decade * step <= high)
        decade *= 10
    return tuple(bounds)


# BentoML's request-duration histogram (configured in the service decorator) and so the
# latency distribution the exporter sends: fine enough that a p99 read from the buckets
# is within a quarter of the true value, from 1 ms to past the request timeout.
LATENCY_BUCKETS_S: Final[tuple[float, ...]] = _decades(0.001, 60.0)


def _row_buckets(top: int = 16_384) -> tuple[float, ...]:
    """Exact up to 16 rows, then four steps per doubling (20, 24, 28, 32, 40 ...)."""
    bounds = [float(n) for n in range(1, 17)]
    octave = 16
    while octave < top:
        bounds.extend(float(octave + octave * quarter // 4) for quarter in (1, 2, 3, 4))
        octave *= 2
    return tuple(bounds)


MODEL_CALL_ROW_BUCKETS: Final[tuple[float, ...]] = _row_buckets()


class ServiceMetrics:
    """Counters of predictions by class and out-of-distribution values by feature."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client

        # The process's registry (what /metrics shows) unless a test gives its own.
        where = {"registry": registry} if registry is not None else {}
        self._predictions: Any = prometheus_client.Counter(
            name=PREDICTIONS,
            documentation="Predictions served, by predicted quality class.",
            labelnames=["quality"],
            **where,
        )
        self._ood: Any = prometheus_client.Counter(
            name=OUT_OF_DISTRIBUTION,
            documentation="Feature values outside the training data's range, by feature.",
            labelnames=["feature"],
            **where,
        )
        self._rows: Any = prometheus_client.Histogram(
            name=MODEL_CALL_ROWS,
            documentation="Rows per model call (what adaptive batching merged).",
            buckets=MODEL_CALL_ROW_BUCKETS,
            **where,
        )
        self._info: Any = prometheus_client.Gauge(
            name=MODEL_INFO,
            documentation="The model this worker serves (value is always 1).",
            labelnames=["model_version", "engine"],
            multiprocess_mode="livemax",
            **where,
        )

    def model_info(self, version: str, engine: str) -> None:
        """Record which model version and engine this worker serves."""
        self._info.labels(model_version=version, engine=engine).set(1)

    def observe(self, predicted: npt.NDArray[Any], outside: npt.NDArray[np.bool_]) -> None:
        """Count one scored batch: its size, its predicted classes and its out-of-range values."""
        self._rows.observe(len(predicted))
        classes, counts = np.unique(predicted, return_counts=True)
        for quality, count in zip(classes, counts, strict=True):
            self._predictions.labels(quality=str(int(quality))).inc(int(count))
        for j in np.flatnonzero(outside.any(axis=0)):
            self._ood.labels(feature=FEATURE_NAMES[j]).inc(int(outside[:, j].sum()))


class ExporterMetrics:
    """The CloudWatch exporter's own health: sends, failures, dropped points, last success."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client

        # The process's registry (what /metrics shows) unless a test gives its own.
        where = {"registry": registry} if registry is not None else {}
        self.sends: Any = prometheus_client.Counter(
            name=EXPORTER_SENDS,
            documentation="PutMetricData calls CloudWatch accepted.",
            **where,
        )
        self.failures: Any = prometheus_client.Counter(
            name=EXPORTER_FAILURES,
            documentation="PutMetricData calls that failed (each retry counts).",
            **where,
        )
        self.dropped: Any = prometheus_client.Counter(
            name=EXPORTER_DROPPED,
            documentation=(
                "Data points dropped: buffer full, refused by CloudWatch, or sent "
                "without an answer (never sent twice)."
            ),
            **where,
        )
        self.last_success: Any = prometheus_client.Gauge(
            name=EXPORTER_LAST_SUCCESS,
            documentation="Unix time of the last PutMetricData call CloudWatch accepted.",
            multiprocess_mode="max",
            **where,
        )
        self.buffered: Any = prometheus_client.Gauge(
            name=EXPORTER_BUFFERED,
            documentation="Data points waiting to be sent.",
            multiprocess_mode="livesum",
            **where,
        )
