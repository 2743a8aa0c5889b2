"""What a worker counts, in plain Python numbers, and its Prometheus text for ``/metrics``.

BentoML's own request metrics are turned off (``bento/service.py``): with them on, every
request pays for its ASGI metrics middleware and for prometheus_client's multiprocess
storage, where each update checks the process id and writes a memory-mapped file.  The
service has one worker process, so none of that machinery is needed: the request log
middleware (``bento/logs.py``) counts each prediction request here once, the predictor
counts what each model call predicted, and :meth:`ServingMetrics.render` writes the
Prometheus text exposition that ``GET /metrics`` answers (``bento/guard.py``).

Writes happen on the worker's event loop thread only.  Readers (``/metrics`` and the
CloudWatch exporter's thread) take copies; a copy may miss a request that is being
counted at that instant, never count one twice, and the next read has it.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from bento.openapi import BATCH_ROUTE, PREDICT_ROUTE
from training.features import FEATURE_NAMES

# Only these routes are requests here: health, readiness, metrics and docs routes are
# never counted (ALB health checks would otherwise be billed traffic in CloudWatch).
ROUTES: Final = (PREDICT_ROUTE, BATCH_ROUTE)

REQUESTS = "wineq_requests"
REQUEST_DURATION = "wineq_request_duration_seconds"
PREDICTIONS = "wineq_predictions"
OUT_OF_DISTRIBUTION = "wineq_out_of_distribution"
MODEL_INFO = "wineq_model_info"
MODEL_CALL_ROWS = "wineq_model_call_rows"
EXPORTER_SENDS = "wineq_exporter_sends"
EXPORTER_FAILURES = "wineq_exporter_failures"
EXPORTER_DROPPED = "wineq_exporter_dropped_points"
EXPORTER_LAST_SUCCESS = "wineq_exporter_last_success_timestamp_seconds"
EXPORTER_BUFFERED = "wineq_exporter_buffered_points"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def _decades(low: float, high: float) -> tuple[float, ...]:
    """Bounds from ``low`` to ``high`` with ten steps of about 25 % per decade (1, 1.25 ... 8)."""
    steps = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
    bounds: list[float] = []
    decade = low
    while decade < high:
        bounds.extend(round(decade * step, 9) for step in steps if decade * step <= high)
        decade *= 10
    return tuple(bounds)


# The request-duration histogram and so the latency distribution the exporter sends: fine
# enough that a p99 read from the buckets is within a quarter of the true value, from
# 1 ms to past the request timeout.
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


class Histogram:
    """Observations counted per bucket (upper bounds, ``le``; the last bucket is +Inf)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[float, int]]:
        """A copy as (upper bound, observations at or below it), +Inf last."""
        counts = self.counts[:]
        running = 0
        out: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class ExporterHealth(Protocol):
    """What the CloudWatch exporter reports about itself on /metrics."""

    sends: int
    failures: int
    dropped: int
    last_success: float | None

    def buffered(self) -> int:
        """Data points waiting to be sent."""
        ...


class ServingMetrics:
    """Everything one worker counts: requests, latency, predictions, its exporter's health."""

    def __init__(self) -> None:
        # (route, HTTP status) -> requests answered.
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, Histogram] = {
            route: Histogram(LATENCY_BUCKETS_S) for route in ROUTES
        }
        self.predictions: dict[str, int] = {}
        self.out_of_distribution: dict[str, int] = {}
        self.model_call_rows = Histogram(MODEL_CALL_ROW_BUCKETS)
        self.model: tuple[str, str] | None = None
        self.exporter: ExporterHealth | None = None

    # ---------------------------------------------------------------- counting

    def answered(self, path: str, status: int, seconds: float) -> None:
        """Count a request answered with ``status`` after ``seconds``, if it is a prediction.

        Other paths are not requests here, nor is one whose client left before any
        answer (status 0).  A trailing slash is the route itself, as the guard serves it.
        """
        route = path.rstrip("/") or "/"
        if not status or route not in ROUTES:
            return
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.latency[route].observe(seconds)

    def model_call(self, predicted: npt.NDArray[Any], outside: npt.NDArray[np.bool_]) -> None:
        """Count one scored batch: its size, its predicted classes, its out-of-range values."""
        self.model_call_rows.observe(len(predicted))
        classes, counts = np.unique(predicted, return_counts=True)
        for quality, count in zip(classes.tolist(), counts.tolist(), strict=True):
            label = str(int(quality))
            self.predictions[label] = self.predictions.get(label, 0) + count
        if outside.any():
            for j in np.flatnonzero(outside.any(axis=0)).tolist():
                feature = FEATURE_NAMES[j]
                self.out_of_distribution[feature] = self.out_of_distribution.get(feature, 0) + int(
                    outside[:, j].sum()
                )

    def model_info(self, version: str, engine: str) -> None:
        """Record which model version and engine this worker serves."""
        self.model = (version, engine)

    # ---------------------------------------------------------------- reading

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4) of everything counted so far."""
        return "".join(self._lines())

    def _lines(self) -> Iterator[str]:
        yield from _family(
            REQUESTS + "_total",
            "counter",
            "Prediction requests answered, by route and HTTP status.",
            (
                ({"route": route, "status": str(status)}, count)
                for (route, status), count in sorted(dict(self.requests).items())
            ),
        )
        yield from _histogram(
            REQUEST_DURATION,
            "Prediction request latency in seconds, from arrival to the last byte sent.",
            ((({"route": route}), hist) for route, hist in self.latency.items()),
        )
        yield from _family(
            PREDICTIONS + "_total",
            "counter",
            "Predictions served, by predicted quality class.",
            (({"quality": q}, n) for q, n in sorted(dict(self.predictions).items())),
        )
        yield from _family(
            OUT_OF_DISTRIBUTION + "_total",
            "counter",
            "Feature values outside the training data's range, by feature.",
            (({"feature": f}, n) for f, n in sorted(dict(self.out_of_distribution).items())),
        )
        yield from _histogram(
            MODEL_CALL_ROWS,
            "Rows per model call (what adaptive batching merged).",
            (({}, self.model_call_rows),),
        )
        if self.model is not None:
            version, engine = self.model
            yield from _family(
                MODEL_INFO,
                "gauge",
                "The model this worker serves (value is always 1).",
                (({"engine": engine, "model_version": version}, 1),),
            )
        exporter = self.exporter
        if exporter is not None:
            yield from _family(
                EXPORTER_SENDS + "_total",
                "counter",
                "PutMetricData calls CloudWatch accepted.",
                (({}, exporter.sends),),
            )
            yield from _family(
                EXPORTER_FAILURES + "_total",
                "counter",
                "PutMetricData calls that failed (each retry counts).",
                (({}, exporter.failures),),
            )
            yield from _family(
                EXPORTER_DROPPED + "_total",
                "counter",
                "Data points dropped: buffer full, refused by CloudWatch, or sent without "
                "an answer (never sent twice).",
                (({}, exporter.dropped),),
            )
            yield from _family(
                EXPORTER_BUFFERED,
                "gauge",
                "Data points waiting to be sent.",
                (({}, exporter.buffered()),),
            )
            yield from _family(
                EXPORTER_LAST_SUCCESS,
                "gauge",
                "Unix time of the last PutMetricData call CloudWatch accepted (0: none yet).",
                (({}, exporter.last_success or 0.0),),
            )


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
) -> Iterator[str]:
    yield f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
    for labels, value in samples:
        yield f"{name}{_labels(labels)} {_number(value)}\n"


def _histogram(
    name: str, help_text: str, series: Iterable[tuple[dict[str, str], Histogram]]
) -> Iterator[str]:
    yield f"# HELP {name} {help_text}\n# TYPE {name} histogram\n"
    for labels, hist in series:
        total = hist.total
        cumulative = hist.cumulative()
        for bound, count in cumulative:
            yield f"{name}_bucket{_labels({**labels, 'le': _number(bound)})} {_number(count)}\n"
        yield f"{name}_count{_labels(labels)} {_number(cumulative[-1][1])}\n"
        yield f"{name}_sum{_labels(labels)} {_number(total)}\n"
