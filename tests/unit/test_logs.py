"""Structured logs in-process: the JSON line, which requests get one (through the real
middleware with a stub app behind it), the expected-refusal filter, and shipping to the
moto server's CloudWatch Logs.  tests/integration/test_cloudwatch.py checks a real worker."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest
from bentoml.exceptions import ServiceUnavailable

from bento.guard import ROWS_SCOPE_KEY, Row
from bento.logs import (
    REQUEST_LOGGER,
    CloudWatchLogs,
    ExpectedRefusalFilter,
    JsonFormatter,
    RequestLog,
)
from bento.metrics import ServingMetrics
from bento.settings import ServiceSettings
from bento.state import ServingState
from tests.fixtures.cli import REPO_ROOT

Message = MutableMapping[str, Any]
VERSION = "20250101-abcdef"
# A value only a request body carries: it must never reach a log line.
BODY_MARKER = "9.87654321"


def _record(message: str, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("bentoml.wineq", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_a_record_is_one_json_line_with_the_four_base_fields() -> None:
    line = JsonFormatter().format(_record("hello\nworld"))

    assert "\n" not in line
    entry = json.loads(line)
    assert entry.keys() == {"timestamp", "level", "logger", "message"}
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "bentoml.wineq"
    assert entry["message"] == "hello\nworld"
    assert entry["timestamp"].endswith("+00:00")


def test_an_unexpected_error_keeps_its_traceback_in_the_same_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)

    assert "\n" not in line
    assert "RuntimeError: boom" in json.loads(line)["exception"]


def test_an_expected_refusal_loses_its_traceback_and_other_errors_keep_theirs() -> None:
    def record_for(exc: Exception) -> logging.LogRecord:
        try:
            raise exc
        except Exception:
            return logging.LogRecord(
                "bentoml", logging.ERROR, __file__, 1, "Exception on /predict", (), sys.exc_info()
            )

    refusals = ExpectedRefusalFilter()

    assert not refusals.filter(record_for(ServiceUnavailable("process is overloaded")))
    assert refusals.filter(record_for(ValueError("a real fault")))
    assert refusals.filter(_record("no exception at all"))


# ------------------------------------------------------------------ the request line


async def _call(
    middleware: RequestLog,
    path: str,
    *,
    status: int,
    body: bytes = b"{}",
    scope: dict[str, Any] | None = None,
) -> None:
    """One request through the middleware; the stub app answers ``status`` with ``body``."""

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(scope.get("delay", 0))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def receive() -> Message:
        return {"type": "http.request", "body": json.dumps({"x": BODY_MARKER}).encode()}

    async def send(message: Message) -> None:
        return None

    middleware.app = app
    full_scope = {"type": "http", "method": "POST", "path": path, "headers": [], **(scope or {})}
    await middleware(full_scope, receive, send)


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == REQUEST_LOGGER]


def _middleware(**settings: Any) -> RequestLog:
    stub: Callable[..., Awaitable[None]] = lambda *_: asyncio.sleep(0)  # noqa: E731
    state = ServingState(model_version=VERSION, ready=True)
    return RequestLog(stub, ServiceSettings(**settings), state, ServingMetrics())


def test_a_fast_success_gets_no_line_and_a_refusal_gets_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    middleware = _middleware()
    refusal = json.dumps({"error": "validation_error", "detail": [{"field": "x"}]}).encode()
    headers = [(b"x-request-id", b"client-7")]

    asyncio.run(_call(middleware, "/predict", status=200))
    asyncio.run(_call(middleware, "/predict", status=422, body=refusal, scope={"headers": headers}))

    (line,) = _lines(caplog)
    assert line["status"] == 422
    assert line["error"] == "validation_error"
    assert line["request_id"] == "client-7"
    assert line["route"] == "/predict"
    assert line["method"] == "POST"
    assert line["model_version"] == VERSION
    assert line["level"] == "INFO"
    assert line["latency_ms"] >= 0
    assert "detail" not in json.dumps(line)


def test_overload_is_a_warning_a_fault_an_error_and_a_slow_success_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    middleware = _middleware(log_slow_ms=50)

    asyncio.run(_call(middleware, "/predict", status=503, body=b'{"error": "overloaded"}'))
    asyncio.run(_call(middleware, "/predict/batch", status=500))
    asyncio.run(_call(middleware, "/predict", status=200, scope={"delay": 0.08}))

    levels = [(line["status"], line["level"]) for line in _lines(caplog)]
    assert levels == [(503, "WARNING"), (500, "ERROR"), (200, "WARNING")]


def test_every_request_gets_a_line_when_asked_and_probes_never(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    middleware = _middleware(log_every_request=True)
    rows = [Row((1.0,), "body-id-1")]

    asyncio.run(_call(middleware, "/predict", status=200, scope={ROWS_SCOPE_KEY: rows}))
    for probe in ("/readyz", "/livez", "/healthz", "/metrics"):
        asyncio.run(_call(middleware, probe, status=503))

    (line,) = _lines(caplog)
    assert line["request_id"] == "body-id-1"
    assert line["status"] == 200
    assert BODY_MARKER not in json.dumps(line)


# ------------------------------------------------------------------ handlers


def test_configure_logging_makes_every_logger_write_json_lines() -> None:
    # In a fresh interpreter: configuring logging here would replace pytest's own capture.
    probe = (
        "import logging, logging.config\n"
        "logging.config.dictConfig({'version': 1, 'handlers': {'h': {'class': "
        "'logging.StreamHandler', 'stream': 'ext://sys.stdout'}}, 'loggers': {'bentoml': "
        "{'handlers': ['h'], 'level': 'INFO', 'propagate': False}}})\n"
        "from bento.logs import configure_logging\n"
        "from bento.settings import ServiceSettings\n"
        "configure_logging(ServiceSettings())\n"
        "logging.getLogger('bentoml.wineq').info('hello')\n"
        "logging.getLogger('uvicorn.error').warning('warned')\n"
        "from bentoml.exceptions import ServiceUnavailable\n"
        "try:\n    raise ServiceUnavailable('process is overloaded')\n"
        "except ServiceUnavailable:\n"
        "    logging.getLogger('bentoml._internal.server').exception('Exception on /predict')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout

    entries = [json.loads(line) for line in out.splitlines()]
    assert [(e["logger"], e["message"]) for e in entries] == [
        ("bentoml.wineq", "hello"),
        ("uvicorn.error", "warned"),
    ]


def test_cloudwatch_logs_ships_json_lines_to_the_group(aws_env: str) -> None:
    import boto3

    logs = boto3.client("logs")
    group = f"/wineq/test-{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    handler = CloudWatchLogs(group, flush_timeout_s=5.0, max_queued=100)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"wineq.test.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.addHandler(handler)
    # Logged before watchtower is set up: kept, then shipped.
    logger.warning("first")
    handler.start()
    for i in range(3):
        logger.warning("line %d", i)
    assert handler.wait_started(10)
    handler.close()

    events = logs.filter_log_events(logGroupName=group)["events"]
    messages = [json.loads(e["message"])["message"] for e in events]
    assert messages == ["first", "line 0", "line 1", "line 2"]
    (stream,) = {e["logStreamName"] for e in events}
    assert stream == handler.stream


def test_cloudwatch_logs_hanging_never_blocks_and_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An endpoint that takes connections and never answers: every call waits its timeout.
    hanging = socket.create_server(("127.0.0.1", 0), backlog=64)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{hanging.getsockname()[1]}")
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    handler = CloudWatchLogs("/wineq/nowhere", flush_timeout_s=0.5, max_queued=50)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"wineq.test.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.addHandler(handler)
    handler.start()
    assert handler.wait_started(10)

    started = time.monotonic()
    for i in range(2_000):
        logger.warning("line %d", i)
    emitting = time.monotonic() - started
    closing = time.monotonic()
    handler.close()

    hanging.close()

    assert emitting < 2.0
    assert time.monotonic() - closing < 3.0
    # What waits is watchtower's queue and the batch its thread holds.
    assert handler.dropped >= 2_000 - 4 * 50
