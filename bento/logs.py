"""Structured logs: JSON lines on stdout, and to CloudWatch Logs through watchtower when asked.

Every record becomes one JSON object on one line: ``timestamp``, ``level``, ``logger``,
``message``, and for request lines ``request_id`` (when the client gave one), ``method``,
``route``, ``status``, ``error``, ``latency_ms`` and ``model_version``.  A request body is
never logged.

A line per successful request costs worker CPU the metrics already spend counting the
same requests, so :class:`RequestLog` writes one only for refused and failed requests,
for slow ones (``WINEQ_LOG_SLOW_MS``), or for every request (``WINEQ_LOG_EVERY_REQUEST``).
An expected refusal is that one line: BentoML's traceback for its load-shedding 503 is
filtered out (:class:`ExpectedRefusalFilter`).

With ``WINEQ_LOG_GROUP`` set, :class:`CloudWatchLogs` also ships the lines to that group,
one stream per task, batched by watchtower on its own thread from a bounded queue: a
CloudWatch Logs outage drops the oldest lines, it never blocks or fails a request.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Final

from bento.guard import ROWS_SCOPE_KEY
from bento.metrics import ServingMetrics
from bento.settings import ServiceSettings
from bento.state import ServingState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_LOGGER: Final = "bentoml.wineq.requests"
# The fields a request line adds to the base four, in this order.
REQUEST_FIELDS: Final = (
    "request_id",
    "method",
    "route",
    "status",
    "error",
    "latency_ms",
    "model_version",
)
# Probes answer 503 by design while starting and draining: no line for them.
QUIET_PATHS: Final = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
REQUEST_ID_HEADER: Final = b"x-request-id"
MAX_REQUEST_ID_CHARS: Final = 128
# How much of an error answer is read for its error code (the project's error bodies are small).
MAX_ERROR_BODY_BYTES: Final = 4_096
# watchtower's batching: at most this many seconds between two PutLogEvents calls.
LOG_SEND_INTERVAL_S: Final = 5
# Lines waiting for CloudWatch Logs, beyond which the oldest are dropped.
MAX_QUEUED_LOG_EVENTS: Final = 10_000


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (an exception's traceback, if any, as one string field)."""
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in REQUEST_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ExpectedRefusalFilter(logging.Filter):
    """Drop BentoML's error record (and traceback) for a refusal the service expects.

    BentoML logs its adaptive batcher's load shedding (``ServiceUnavailable``, which the
    guard answers as 503 ``overloaded``) as an error with two chained tracebacks; the
    request line already says the request was refused.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record carrying an expected refusal's exception."""
        from bentoml.exceptions import ServiceUnavailable

        return not (record.exc_info and isinstance(record.exc_info[1], ServiceUnavailable))


class RequestLog:
    """ASGI middleware: a JSON line for refused, failed and slow requests (or every one).

    It also counts every answered prediction request, with its status and latency, in
    the worker's :class:`~bento.metrics.ServingMetrics` (what /metrics and CloudWatch see).
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: ServiceSettings,
        state: ServingState,
        metrics: ServingMetrics,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.every = settings.log_every_request
        self.slow_ms = settings.log_slow_ms
        self.state = state
        self.logger = logging.getLogger(REQUEST_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http" or scope["path"] in QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        error_body = bytearray()

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif (
                message["type"] == "http.response.body"
                and status >= 400
                and len(error_body) < MAX_ERROR_BODY_BYTES
            ):
                error_body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            status = status or 500
            raise
        finally:
            seconds = time.perf_counter() - started
            self.metrics.answered(scope["path"], status, seconds)
            latency_ms = seconds * 1000.0
            if self.every or status >= 400 or latency_ms >= self.slow_ms:
                self._line(scope, status, latency_ms, bytes(error_body))

    def _line(self, scope: Scope, status: int, latency_ms: float, error_body: bytes) -> None:
        error = _error_code(error_body) if status >= 400 else None
        if status >= 500 and status != 503:
            level, what = logging.ERROR, "failed"
        elif status >= 400:
            level = logging.WARNING if status in (429, 503) else logging.INFO
            what = "refused"
        elif latency_ms >= self.slow_ms:
            level, what = logging.WARNING, "slow"
        else:
            level, what = logging.INFO, "served"
        method = str(scope.get("method", ""))
        route = str(scope["path"])[:200]
        self.logger.log(
            level,
            "%s %s %s: %d%s in %.1f ms",
            what,
            method,
            route,
            status,
            f" {error}" if error else "",
            latency_ms,
            extra={
                "request_id": _request_id(scope),
                "method": method,
                "route": route,
                "status": status,
                "error": error,
                "latency_ms": round(latency_ms, 3),
                "model_version": self.state.model_version,
            },
        )


def _request_id(scope: Scope) -> str | None:
    """The client's request id: from the validated body's rows, else the X-Request-ID header."""
    rows = scope.get(ROWS_SCOPE_KEY)
    if rows and rows[0].request_id is not None:
        return str(rows[0].request_id)[:MAX_REQUEST_ID_CHARS]
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            return text[:MAX_REQUEST_ID_CHARS] if text.isprintable() else None
    return None


def _error_code(body: bytes) -> str | None:
    """The ``error`` code of the project's error answer, if it is one."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    code = payload.get("error") if isinstance(payload, dict) else None
    return code if isinstance(code, str) else None


# ------------------------------------------------------------------ CloudWatch Logs


def _watchtower_handler(**options: Any) -> logging.Handler:
    """A watchtower handler whose queue is bounded (oldest kept, newest dropped and counted)."""
    import watchtower

    class BoundedHandler(watchtower.CloudWatchLogHandler):
        """watchtower's handler with a bounded queue and a bounded wait at close."""

        def __init__(self, *, max_queued: int, flush_timeout_s: float, **kwargs: Any) -> None:
            self.max_queued = max_queued
            self.dropped = 0
            super().__init__(**kwargs)
            # watchtower waits this long for its queue at flush and close (30 s by default).
            # (A class int there; any number of seconds works where it is used.)
            self.FLUSH_TIMEOUT = flush_timeout_s  # type: ignore[assignment]

        def emit(self, record: logging.LogRecord) -> None:
            queued = self.queues.get(self.log_stream_name)
            if queued is not None and queued.qsize() >= self.max_queued:
                self.dropped += 1
                return
            super().emit(record)  # type: ignore[no-untyped-call]

    return BoundedHandler(**options)


def stream_name() -> str:
    """This task's log stream: host name and start time (colons are not allowed)."""
    started = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime())
    return f"{platform.node() or 'wineq'}/{started}"


class CloudWatchLogs(logging.Handler):
    """Ship JSON lines to a CloudWatch Logs group through watchtower, off the request path.

    watchtower and its boto3 client are set up on a background thread, so the worker's
    start does not wait for them; lines logged meanwhile wait in a bounded buffer.
    """

    def __init__(self, group: str, *, flush_timeout_s: float, max_queued: int) -> None:
        super().__init__()
        self.group = group
        self.stream = stream_name()
        self.flush_timeout_s = flush_timeout_s
        self.max_queued = max_queued
        self.early_dropped = 0
        self._target: logging.Handler | None = None
        self._closed = False
        self._early: deque[logging.LogRecord] = deque()
        self._connecting = threading.Thread(
            target=self._connect, name="wineq-cloudwatch-logs", daemon=True
        )

    def start(self) -> None:
        """Set up watchtower on a background thread."""
        self._connecting.start()

    def wait_started(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the set-up; whether lines now go to watchtower."""
        self._connecting.join(timeout)
        return self._target is not None

    @property
    def dropped(self) -> int:
        """Lines dropped because CloudWatch Logs could not take them fast enough."""
        return self.early_dropped + int(getattr(self._target, "dropped", 0))

    def emit(self, record: logging.LogRecord) -> None:
        """Hand the record to watchtower's queue, or keep it until watchtower is set up."""
        target = self._target
        if target is not None:
            target.handle(record)
            return
        if len(self._early) >= self.max_queued:
            self._early.popleft()
            self.early_dropped += 1
        self._early.append(record)

    def _connect(self) -> None:
        try:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "logs",
                config=Config(
                    connect_timeout=self.flush_timeout_s / 2,
                    read_timeout=self.flush_timeout_s / 2,
                    retries={"total_max_attempts": 1},
                ),
            )
            target = _watchtower_handler(
                log_group_name=self.group,
                log_stream_name=self.stream,
                boto3_client=client,
                # Terraform owns the group; the task may write to it, not create it.
                create_log_group=False,
                send_interval=LOG_SEND_INTERVAL_S,
                # watchtower's thread holds one batch besides the queue: bounded alike.
                max_batch_count=self.max_queued,
                max_queued=self.max_queued,
                flush_timeout_s=self.flush_timeout_s,
            )
        except Exception as exc:  # stdout still has every line
            logging.getLogger("bentoml.wineq").warning(
                "CloudWatch Logs shipping is off: %s", type(exc).__name__
            )
            return
        target.setFormatter(JsonFormatter())
        with self.lock:  # type: ignore[union-attr]
            if not self._closed:
                while self._early:
                    target.handle(self._early.popleft())
                self._target = target
                return
        target.close()  # closed while setting up: ship nothing later

    def close(self) -> None:
        """Send the queued lines, waiting at most the flush timeout, then stop."""
        with self.lock:  # type: ignore[union-attr]
            self._closed = True
            target = self._target
        if target is not None:
            target.close()
        super().close()


def configure_logging(settings: ServiceSettings) -> CloudWatchLogs | None:
    """Make every log record of this worker a JSON line; ship them too when a group is set.

    Replaces the handlers BentoML's server logging configured (same levels), so
    BentoML's, uvicorn's and the project's records all leave through the same handlers.
    Returns the CloudWatch Logs handler, to be closed at shutdown, or None.
    """
    formatter = JsonFormatter()
    refusals = ExpectedRefusalFilter()
    stdout = logging.StreamHandler(sys.stdout)
    handlers: list[logging.Handler] = [stdout]
    shipping = None
    if settings.log_group is not None:
        shipping = CloudWatchLogs(
            settings.log_group,
            flush_timeout_s=settings.metrics_flush_timeout_s,
            max_queued=MAX_QUEUED_LOG_EVENTS,
        )
        handlers.append(shipping)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(refusals)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.handlers:
            logger.handlers.clear()
            logger.propagate = True
    root = logging.getLogger()
    root.handlers[:] = handlers
    if shipping is not None:
        shipping.start()
    return shipping
