"""The sidecar-free CloudWatch exporter: what /metrics counts, sent as CloudWatch custom metrics.

Each worker runs one :class:`CloudWatchExporter` thread.  Every interval it reads the
counts the worker already keeps for ``/metrics`` (:class:`bento.metrics.ServingMetrics`:
requests by route and status, their latency histogram, predictions, rows per model
call), turns the increase since the previous read into CloudWatch data points and
sends them in one ``PutMetricData`` call (split only where the API's limits require).
Nothing is counted a second time on the request path, so what CloudWatch receives is
what the worker served.

The request path never waits for it: reads and sends happen on the exporter's own
thread, the points wait in a bounded buffer that drops the oldest (and counts them)
while CloudWatch is unreachable, throttling and connection errors are retried with
backoff and jitter within the interval, and a last batch is sent at shutdown, bounded in
time.  A call that was sent but got no answer is never sent again: CloudWatch may have
stored it, and counting the same requests twice is worse than missing them (it is
counted as dropped).

:data:`METRICS` is the one definition of what CloudWatch receives: names, units,
dimensions.  The README's table and the Terraform dashboard and alarms are checked
against it (``tests/unit/test_exporter.py``, ``tests/infra/``).
"""

from __future__ import annotations

import gc
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from bento.metrics import ROUTES, ServingMetrics
from bento.settings import ServiceSettings

logger = logging.getLogger("bentoml.wineq.exporter")

# ------------------------------------------------------------------ what CloudWatch receives

BASE_DIMENSIONS: Final = ("Service", "ModelVersion")
STATUS_CLASSES: Final = ("2xx", "4xx", "5xx")


@dataclass(frozen=True)
class MetricDef:
    """One CloudWatch metric the exporter sends."""

    name: str
    unit: str
    dimensions: tuple[str, ...]
    description: str
    # The boolean serving setting that turns the metric on; None: always sent.
    setting: str | None = None
    # Also sent with the Service dimension alone, summed over model versions and routes:
    # an alarm needs fixed dimensions, and ModelVersion changes with every model.
    rollup: bool = False


REQUESTS: Final = {status_class: f"Requests{status_class}" for status_class in STATUS_CLASSES}
REFUSALS_503: Final = "Refusals503"
LATENCY: Final = "Latency"
ROWS_PER_MODEL_CALL: Final = "RowsPerModelCall"
EXPORTER_FAILURES: Final = "ExporterFailures"
PREDICTIONS_BY_CLASS: Final = "Predictions"
OUT_OF_DISTRIBUTION_BY_FEATURE: Final = "OutOfDistribution"

METRICS: Final[tuple[MetricDef, ...]] = (
    *(
        MetricDef(
            REQUESTS[status_class],
            "Count",
            (*BASE_DIMENSIONS, "Route"),
            f"Prediction requests answered with a {status_class} status, per route.",
            rollup=status_class == "5xx",
        )
        for status_class in STATUS_CLASSES
    ),
    MetricDef(
        REFUSALS_503,
        "Count",
        BASE_DIMENSIONS,
        "Prediction requests refused with 503: overloaded or not ready (also in Requests5xx).",
    ),
    MetricDef(
        LATENCY,
        "Milliseconds",
        BASE_DIMENSIONS,
        "Prediction request latency as a distribution (values are the upper bounds of "
        "the worker's duration buckets): read p50, p90, p99.",
        rollup=True,
    ),
    MetricDef(
        ROWS_PER_MODEL_CALL,
        "Count",
        BASE_DIMENSIONS,
        "Rows per model call, the size adaptive batching reached, as a distribution.",
    ),
    MetricDef(
        EXPORTER_FAILURES,
        "Count",
        BASE_DIMENSIONS,
        "PutMetricData calls of this exporter that failed, sent with the next batch.",
    ),
    MetricDef(
        PREDICTIONS_BY_CLASS,
        "Count",
        (*BASE_DIMENSIONS, "Quality"),
        "Rows predicted, by predicted quality class (3-9).",
        setting="metrics_by_class",
    ),
    MetricDef(
        OUT_OF_DISTRIBUTION_BY_FEATURE,
        "Count",
        (*BASE_DIMENSIONS, "Feature"),
        "Feature values outside the training data's range, by feature.",
        setting="metrics_by_feature",
    ),
)
UNITS: Final = {metric.name: metric.unit for metric in METRICS}
ROLLUPS: Final = frozenset(metric.name for metric in METRICS if metric.rollup)
ROLLUP_DIMENSIONS: Final = ("Service",)
DEFAULT_METRICS: Final = frozenset(metric.name for metric in METRICS if metric.setting is None)
# Metric/dimension combinations are billed each; per model version the default set stays
# within this many (each rollup adds one per service, whatever the version).
DEFAULT_COMBINATIONS_LIMIT: Final = 10


def enabled_metrics(settings: ServiceSettings) -> frozenset[str]:
    """Names of the metrics sent under ``settings``: the default set plus the opted-in ones."""
    return frozenset(
        metric.name
        for metric in METRICS
        if metric.setting is None or getattr(settings, metric.setting)
    )


# ------------------------------------------------------------------ reading the worker's counts

Dimensions = tuple[tuple[str, str], ...]
# One counted series: metric name, its dimensions besides Service and ModelVersion, and
# for a distribution the bucket's upper bound (None for a plain count).
Point = tuple[str, Dimensions, float | None]


def read_counts(metrics: ServingMetrics) -> dict[Point, float]:
    """The worker's cumulative counts, as points; distributions as cumulative buckets."""
    counts: dict[Point, float] = {}

    def add(point: Point, value: float) -> None:
        counts[point] = counts.get(point, 0.0) + value

    for (route, status), served in dict(metrics.requests).items():
        status_class = f"{status // 100}xx"
        if status_class in REQUESTS:
            add((REQUESTS[status_class], (("Route", route),), None), served)
        if status == 503:
            add((REFUSALS_503, (), None), served)
    for histogram in metrics.latency.values():
        for bound, below in histogram.cumulative():
            add((LATENCY, (), bound), below)
    for bound, below in metrics.model_call_rows.cumulative():
        add((ROWS_PER_MODEL_CALL, (), bound), below)
    for quality, predicted in dict(metrics.predictions).items():
        add((PREDICTIONS_BY_CLASS, (("Quality", quality),), None), predicted)
    for feature, flagged in dict(metrics.out_of_distribution).items():
        add((OUT_OF_DISTRIBUTION_BY_FEATURE, (("Feature", feature),), None), flagged)
    return counts


def increase(current: Mapping[Point, float], previous: Mapping[Point, float]) -> dict[Point, float]:
    """What was counted between two reads (counters only grow within a worker)."""
    return {point: max(0.0, value - previous.get(point, 0.0)) for point, value in current.items()}


# ------------------------------------------------------------------ CloudWatch data points

# PutMetricData limits: metrics per call, distinct values per datum, request size.
MAX_DATA_PER_CALL: Final = 1_000
MAX_VALUES_PER_DATUM: Final = 150
MAX_CALL_BYTES: Final = 1_000_000


def _always_sent() -> dict[Point, float]:
    """The default counts, sent as 0 when nothing happened so rates and alarms stay defined."""
    points: dict[Point, float] = {(REFUSALS_503, (), None): 0.0}
    for route in ROUTES:
        for name in REQUESTS.values():
            points[(name, (("Route", route),), None)] = 0.0
    return points


def _bucket_value(name: str, bound: float, finite_bounds: list[float]) -> float:
    """The value a bucket stands for: its upper bound (+Inf: the highest finite bound)."""
    if math.isinf(bound):
        bound = finite_bounds[-1] if finite_bounds else 0.0
    return round(bound * 1000.0, 3) if UNITS[name] == "Milliseconds" else bound


def to_data(
    counted: Mapping[Point, float],
    *,
    base: Dimensions,
    enabled: frozenset[str],
    timestamp: datetime,
) -> list[dict[str, Any]]:
    """CloudWatch ``MetricData`` entries for what was counted in one interval."""
    rollup = tuple((key, value) for key, value in base if key in ROLLUP_DIMENSIONS)
    plain: dict[tuple[str, Dimensions], float] = {}
    buckets: dict[tuple[str, Dimensions], dict[float, float]] = {}
    for (name, extra, bound), value in {**_always_sent(), **counted}.items():
        if name not in enabled:
            continue
        for dims in ((*base, *extra), rollup) if name in ROLLUPS else ((*base, *extra),):
            if bound is None:
                plain[(name, dims)] = plain.get((name, dims), 0.0) + value
            else:
                series = buckets.setdefault((name, dims), {})
                series[bound] = series.get(bound, 0.0) + value

    def dimensions(dims: Dimensions) -> list[dict[str, str]]:
        return [{"Name": key, "Value": value} for key, value in dims]

    data: list[dict[str, Any]] = [
        {
            "MetricName": name,
            "Dimensions": dimensions(extra),
            "Timestamp": timestamp,
            "Value": value,
            "Unit": UNITS[name],
        }
        for (name, extra), value in sorted(plain.items())
    ]
    for (name, extra), cumulative in sorted(buckets.items()):
        bounds = sorted(cumulative)
        finite = [bound for bound in bounds if not math.isinf(bound)]
        values: list[float] = []
        counts: list[float] = []
        below = 0.0
        for bound in bounds:
            in_bucket = cumulative[bound] - below
            below = cumulative[bound]
            if in_bucket > 0:
                values.append(_bucket_value(name, bound, finite))
                counts.append(in_bucket)
        for start in range(0, len(values), MAX_VALUES_PER_DATUM):
            data.append(
                {
                    "MetricName": name,
                    "Dimensions": dimensions(extra),
                    "Timestamp": timestamp,
                    "Values": values[start : start + MAX_VALUES_PER_DATUM],
                    "Counts": counts[start : start + MAX_VALUES_PER_DATUM],
                    "Unit": UNITS[name],
                }
            )
    return data


def _size(datum: Mapping[str, Any]) -> int:
    """A generous estimate of a datum's share of the request body, in bytes."""
    return 400 + 48 * len(datum.get("Values", ())) + 64 * len(datum["Dimensions"])


def first_call(pending: Iterable[Mapping[str, Any]]) -> int:
    """How many of the pending data (oldest first) fit in one PutMetricData call."""
    taken = 0
    size = 0
    for datum in pending:
        size += _size(datum)
        if taken == MAX_DATA_PER_CALL or (taken and size > MAX_CALL_BYTES):
            break
        taken += 1
    return taken


# ------------------------------------------------------------------ sending


class _Outcome:
    RETRY = "retry"  # throttled, a server error or no connection: again within the interval
    KEEP = "keep"  # credentials or permissions: keep the data, try at the next interval
    REJECT = "reject"  # CloudWatch refuses the data itself: drop it, it would never pass
    # The call was sent and no answer came: CloudWatch may have stored it. Sending it
    # again could count the same requests twice, so it is dropped (at most once).
    UNCONFIRMED = "unconfirmed"


_THROTTLED: Final = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)


def classify(exc: BaseException) -> str:
    """What to do after a failed PutMetricData call."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _THROTTLED or status >= 500 or status == 429:
            return _Outcome.RETRY
        if "InvalidParameter" in code or "MissingParameter" in code or "MissingRequired" in code:
            return _Outcome.REJECT
        return _Outcome.KEEP
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError):
        return _Outcome.UNCONFIRMED
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return _Outcome.RETRY
    return _Outcome.KEEP


# Backoff between retries within an interval: full jitter over an exponential ceiling.
BACKOFF_BASE_S: Final = 0.1
# Retries of one failing call within an interval: an outage that outlasts them is waited
# out until the next interval, each attempt being a whole request built and signed.
MAX_RETRIES: Final = 3
# Sends stop retrying past this share of the interval, so one never runs into the next.
SEND_SHARE: Final = 0.5


class CloudWatchExporter:
    """A worker's background exporter thread: reads, buffers and sends its metrics."""

    def __init__(
        self,
        *,
        namespace: str,
        service: str,
        model_version: Callable[[], str],
        interval_s: float = 60.0,
        flush_timeout_s: float = 2.0,
        buffer_points: int = 2_000,
        enabled: frozenset[str] | None = None,
        metrics: ServingMetrics,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.namespace = namespace
        self.service = service
        self.model_version = model_version
        self.interval_s = interval_s
        self.flush_timeout_s = flush_timeout_s
        self.enabled = enabled if enabled is not None else DEFAULT_METRICS
        self.metrics = metrics
        metrics.exporter = self  # its health is shown on /metrics
        self.ready = ready
        self.buffer: deque[dict[str, Any]] = deque()
        self.buffer_points = buffer_points
        self.sends = 0
        self.failures = 0
        self.dropped = 0
        self.last_success: float | None = None
        self._previous: dict[Point, float] = {}
        self._failures_reported = 0
        self._failing_since: int | None = None
        self._client: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="wineq-cloudwatch-exporter", daemon=True
        )

    @classmethod
    def from_settings(
        cls,
        settings: ServiceSettings,
        *,
        service: str,
        model_version: Callable[[], str],
        metrics: ServingMetrics,
        ready: Callable[[], bool] | None = None,
    ) -> CloudWatchExporter | None:
        """The exporter the settings ask for (started, reporting on ``metrics``), or None
        when no namespace is set."""
        if settings.metrics_namespace is None:
            return None
        exporter = cls(
            namespace=settings.metrics_namespace,
            service=service,
            model_version=model_version,
            interval_s=settings.metrics_interval_s,
            flush_timeout_s=settings.metrics_flush_timeout_s,
            buffer_points=settings.metrics_buffer_points,
            enabled=enabled_metrics(settings),
            metrics=metrics,
            ready=ready,
        )
        exporter.start()
        return exporter

    def start(self) -> None:
        """Start the background thread; the first batch goes out one interval from now."""
        self._thread.start()
        logger.info(
            "Sending metrics to CloudWatch namespace %s every %g s",
            self.namespace,
            self.interval_s,
        )

    def buffered(self) -> int:
        """Data points waiting to be sent (shown on /metrics)."""
        return len(self.buffer)

    def stop(self) -> None:
        """Ask the thread for its final batch (what was counted since the last one) and to end."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread; whether it ended.

        The thread is a daemon: one still waiting for CloudWatch never holds up the exit.
        """
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> bool:
        """Send the final batch and stop, within the flush timeout; whether it ended in time."""
        self.stop()
        return self.join(self.flush_timeout_s)

    # -------------------------------------------------------------- one interval

    def collect(self, now: datetime | None = None) -> int:
        """Read the counts, queue the increase since the last read; returns the points queued."""
        current = read_counts(self.metrics)
        counted = increase(current, self._previous)
        self._previous = current
        failed = self.failures - self._failures_reported
        self._failures_reported = self.failures
        counted[(EXPORTER_FAILURES, (), None)] = float(failed)
        base = (("Service", self.service), ("ModelVersion", self.model_version()))
        data = to_data(counted, base=base, enabled=self.enabled, timestamp=now or datetime.now(UTC))
        for datum in data:
            if len(self.buffer) >= self.buffer_points:
                self.buffer.popleft()
                self._drop(1)
            self.buffer.append(datum)
        return len(data)

    def send(self, deadline: float, *, interruptible: bool = True) -> None:
        """Send the buffer, oldest first, retrying transient failures until ``deadline``."""
        attempt = 0
        while self.buffer:
            taken = first_call(self.buffer)
            chunk = [self.buffer[i] for i in range(taken)]
            try:
                self._cloudwatch().put_metric_data(Namespace=self.namespace, MetricData=chunk)
            except Exception as exc:
                outcome = classify(exc)
                self._failed(exc)
                if outcome in (_Outcome.REJECT, _Outcome.UNCONFIRMED):
                    for _ in range(taken):
                        self.buffer.popleft()
                    self._drop(taken)
                    continue
                if outcome == _Outcome.KEEP:
                    return
                attempt += 1
                pause = random.uniform(0, BACKOFF_BASE_S * 2**attempt)  # noqa: S311 - jitter
                if attempt > MAX_RETRIES or time.monotonic() + pause >= deadline:
                    return
                if interruptible:
                    if self._stop.wait(pause):
                        return  # shutting down: the final flush takes over
                else:
                    time.sleep(pause)
                continue
            for _ in range(taken):
                self.buffer.popleft()
            self._succeeded()
            attempt = 0

    # -------------------------------------------------------------- the thread

    def _run(self) -> None:
        self._prepare()
        next_tick = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, next_tick - time.monotonic())):
            self._tick(next_tick + self.interval_s * SEND_SHARE, interruptible=True)
            next_tick += self.interval_s
            now = time.monotonic()
            if next_tick < now:  # fell behind (e.g. a suspended process): skip, do not burst
                next_tick = now + self.interval_s
        self._tick(time.monotonic() + self.flush_timeout_s, interruptible=False)

    def _prepare(self) -> None:
        """Set up the CloudWatch client as soon as the worker is ready (or after an interval).

        Loading boto3 and the service's API model is the exporter's one big CPU cost
        (about a second of 0.25 vCPU). Right after readiness the load balancer has not
        yet sent traffic (it wants several passing health checks first), so the cost
        falls there instead of on the first interval's requests; or at start-up, where
        it would delay readiness.
        """
        deadline = time.monotonic() + self.interval_s
        while self.ready is not None and not self.ready() and time.monotonic() < deadline:
            if self._stop.wait(0.25):
                return
        try:
            self._cloudwatch()
        except Exception:  # counted and reported by the first send that needs it
            return
        # The client's object graph (service model, endpoint data) lives as long as the
        # worker: freeze it, as bento/launch.py froze the start-up's, so that the cyclic
        # collector's full passes on the request path do not walk it again and again.
        gc.freeze()

    def _tick(self, deadline: float, *, interruptible: bool) -> None:
        try:
            self.collect()
            self.send(deadline, interruptible=interruptible)
        except Exception:  # the exporter must never take the worker down
            logger.exception("CloudWatch exporter interval failed")

    def _cloudwatch(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Retries are the exporter's (within the interval). A call that times out
            # after sending is not resent (it may have arrived), so the read timeout is
            # generous; the final flush's bound is kept by close(), not by the call.
            config = Config(
                connect_timeout=min(1.0, self.flush_timeout_s / 2),
                read_timeout=max(self.flush_timeout_s, min(self.interval_s * SEND_SHARE, 10.0)),
                retries={"total_max_attempts": 1},
            )
            self._client = boto3.session.Session().client("cloudwatch", config=config)
        return self._client

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self._failing_since is None:
            self._failing_since = self.failures
            # One line per failure burst, not per attempt or per request.
            logger.warning(
                "CloudWatch metrics export failing (%s); retrying, keeping up to %d points",
                _describe(exc),
                self.buffer_points,
            )

    def _succeeded(self) -> None:
        self.sends += 1
        self.last_success = time.time()
        if self._failing_since is not None:
            logger.info(
                "CloudWatch metrics export recovered after %d failed calls; %d points dropped",
                self.failures - self._failing_since + 1,
                self.dropped,
            )
            self._failing_since = None

    def _drop(self, points: int) -> None:
        self.dropped += points


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a failed call."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return f"{exc.response.get('Error', {}).get('Code', 'error')}"
    return type(exc).__name__
