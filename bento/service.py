"""The wine-quality BentoML service.

``/predict`` and ``/predict/batch`` are BentoML batchable APIs: BentoML's adaptive
batching merges concurrent requests into one model call.  Their bodies keep the shape
existing clients already send; :class:`bento.guard.RequestGuard` validates them and
hands the encoded rows to the APIs through custom IO specs (see ``bento/io.py``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from types import FrameType
from typing import Any

import bentoml

from bento.bentoml_adapter import bind_api_methods
from bento.exporter import CloudWatchExporter
from bento.guard import BATCH_ROUTE, PREDICT_ROUTE, RequestGuard, Row
from bento.io import BatchInputSpec, BatchOutputSpec, PredictInputSpec, PredictOutputSpec
from bento.logs import CloudWatchLogs, RequestLog, configure_logging
from bento.metrics import ServingMetrics
from bento.settings import ServiceSettings
from bento.state import ServingState

logger = logging.getLogger("bentoml.wineq")

# A worker imports this module once, at start-up: the decorator arguments below need the
# settings then. Reading (and checking) the environment is all that happens here.
SETTINGS: ServiceSettings = ServiceSettings.from_env()
# Both prediction routes batch the same way (each route has its own BentoML dispatcher).
BATCHING: dict[str, Any] = {
    "batchable": True,
    "max_batch_size": SETTINGS.batch_max_size,
    "max_latency_ms": SETTINGS.batch_max_latency_ms,
}


@bentoml.service(
    name="wine_quality",
    workers=1,
    # Concurrency is limited by RequestGuard, so refusals keep the project's error shape.
    traffic={"timeout": 30},
    http={"port": 3000},
    # Per-request costs the service does not need (docs/benchmarks.md, "Serving side by
    # side"): BentoML's request metrics (the service counts requests itself, in
    # bento/metrics.py, and answers /metrics from there), its access log (bento/logs.py
    # writes lines for refused, failed and slow requests) and tracing spans of the
    # prediction routes (no tracing exporter is configured; a deployment that adds one
    # can override excluded_urls in its BentoML configuration).
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": [PREDICT_ROUTE, BATCH_ROUTE]},
)
class WineQualityService:
    """Predicts the quality (3-9) of a red or white wine from 11 lab measurements."""

    bundled_model = bentoml.models.BentoModel(SETTINGS.model_tag)
    # This worker's readiness: written only here, read by the request guard it is handed to
    # (see the add_asgi_middleware call at the end of this module).
    state = ServingState()
    # What this worker counts (/metrics, the CloudWatch exporter); the same sharing.
    metrics = ServingMetrics()

    def __init__(self) -> None:
        from bento.runtime import Predictor

        self.settings = SETTINGS
        self._start_telemetry()
        self.predictor: Predictor | None = None
        try:
            self.predictor = Predictor.start(self.settings, self.bundled_model, self.metrics)
        except Exception as exc:  # readiness reports it; the process stays up
            self.state.failure = f"{type(exc).__name__}: {exc}"
            logger.error(
                "Model not loaded, the service will not become ready: %s", self.state.failure
            )
        else:
            self.state.model_version = self.predictor.model.version
            self.state.ready = True
            logger.info("Ready: serving %s", self.predictor.model.tag)
        self._install_drain_handler()
        # BentoML rebuilds a bound API method for every request unless the instance
        # holds it (bento/bentoml_adapter.py).
        bind_api_methods(self)
        # What start-up built after bento/launch.py froze the imports (the app, the
        # model session, this instance) lives as long as the worker too: freeze it, so
        # the collector's full passes walk only what requests leave behind.
        gc.freeze()

    def __is_ready__(self) -> bool:
        """200 on /readyz only while a verified, warmed-up model serves and no shutdown began."""
        return self.state.serving

    @bentoml.api(
        route=PREDICT_ROUTE, input_spec=PredictInputSpec, output_spec=PredictOutputSpec, **BATCHING
    )
    async def predict(self, rows: list[Row]) -> list[dict[str, Any]]:
        """Predict the quality of one wine."""
        return await self._score(rows)

    @bentoml.api(
        route=BATCH_ROUTE, input_spec=BatchInputSpec, output_spec=BatchOutputSpec, **BATCHING
    )
    async def predict_batch(self, rows: list[Row]) -> list[dict[str, Any]]:
        """Predict the quality of several wines; the answers come in the same order."""
        return await self._score(rows)

    async def _score(self, rows: list[Row]) -> list[dict[str, Any]]:
        if self.predictor is None:
            raise RuntimeError("no model loaded")
        return await self.predictor.score(rows)

    def _install_drain_handler(self) -> None:
        """On SIGTERM turn /readyz to 503 at once, keep serving for the drain period, then stop.

        uvicorn has installed its own handler by the time the service is created; it is
        chained after the drain so in-flight and late requests still complete.
        """
        previous = signal.getsignal(signal.SIGTERM)
        drain = self.settings.drain_seconds
        state = self.state

        def stop(signum: int, frame: FrameType | None) -> None:
            if callable(previous):
                previous(signum, frame)
            else:  # no server handler to chain to: die the default way
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if state.draining:
                return
            state.draining = True
            logger.info("SIGTERM: readiness is now 503; draining for %.1f s", drain)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                stop(signum, frame)
                return
            # Thread-safe scheduling wakes the loop even while it waits for I/O.
            loop.call_soon_threadsafe(loop.call_later, drain, stop, signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)

    # ------------------------------------------------ CloudWatch metrics and logs (issue 10)
    # Both leave the worker on background threads (bento/exporter.py, bento/logs.py) and
    # get one last flush after the drain, together bounded by WINEQ_METRICS_FLUSH_TIMEOUT_S.

    def _start_telemetry(self) -> None:
        self.log_shipping: CloudWatchLogs | None = configure_logging(self.settings)
        state = self.state
        self.exporter = CloudWatchExporter.from_settings(
            self.settings,
            service=WineQualityService.name,  # type: ignore[attr-defined]
            model_version=lambda: state.model_version,
            metrics=self.metrics,
            ready=lambda: state.ready,
        )

    @bentoml.on_shutdown
    def flush_telemetry(self) -> None:
        """After the drain and the server's stop: the last metrics batch and queued log lines."""
        deadline = time.monotonic() + self.settings.metrics_flush_timeout_s
        if self.exporter is not None:
            self.exporter.stop()
        if self.log_shipping is not None:
            self.log_shipping.close()
        if self.exporter is not None:
            self.exporter.join(max(0.0, deadline - time.monotonic()))


# Outside the guard, so refusals get their log line too.
WineQualityService.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestLog,
    settings=SETTINGS,
    state=WineQualityService.inner.state,  # type: ignore[attr-defined]
    metrics=WineQualityService.inner.metrics,  # type: ignore[attr-defined]
)
WineQualityService.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestGuard,
    settings=SETTINGS,
    state=WineQualityService.inner.state,  # type: ignore[attr-defined]
    metrics=WineQualityService.inner.metrics,  # type: ignore[attr-defined]
)
