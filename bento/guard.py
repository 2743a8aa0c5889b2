"""ASGI middleware guarding the prediction routes.

Everything about the HTTP boundary happens here, once: body size, content type,
JSON parsing, nesting depth, batch size and schema validation, the model-version
header on every response, and one error shape for every refusal.  Validated rows
are handed to the BentoML API through the ASGI scope, so nothing is parsed twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from bento.admission import AdaptiveLimit, work
from bento.errors import ApiError, field_errors
from bento.metrics import CONTENT_TYPE, ServingMetrics
from bento.openapi import BATCH_ROUTE, DOCS_ROUTE, HEALTH_ROUTE, PREDICT_ROUTE, truthful_document
from bento.schemas import BatchPredictRequest, PredictRequest
from bento.settings import ServiceSettings
from bento.state import ServingState
from training.features import encode_row

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROWS_SCOPE_KEY = "wineq.rows"
MODEL_VERSION_HEADER = b"x-model-version"
METRICS_ROUTE = "/metrics"
__all__ = ["BATCH_ROUTE", "PREDICT_ROUTE", "RequestGuard", "Row"]
# BentoML's own refusals that mean "try again later": its batcher sheds load with 503 and
# its request timeout answers 504; both become the project's 503 with Retry-After.
OVERLOAD_STATUSES = frozenset({429, 503, 504})


@dataclass(frozen=True, slots=True)
class Row:
    """One validated wine, encoded for the model, with the request it came from."""

    vector: tuple[float, ...]
    request_id: str | None


# About one wine's share of a request body (a 256-row batch is about 77 KB): the rows a
# request is taken to carry before its body is read, from its Content-Length.
ROW_BYTES = 300


def _rows_guess(scope: Scope) -> int:
    """The rows a prediction request probably carries, from its declared length (at least 1)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return max(1, int(value) // ROW_BYTES) if value.isdigit() else 1
    return 1


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
            deepest = max(deepest, depth + 1)
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
            deepest = max(deepest, depth + 1)
    return deepest


def to_row(features: BaseModel, request_id: str | None) -> Row:
    """A validated features object as the model's input row."""
    return Row(tuple(encode_row(features.__dict__)), request_id)


class RequestGuard:
    """Validate prediction requests before BentoML sees them; shape every error the same way."""

    def __init__(
        self,
        app: ASGIApp,
        settings: ServiceSettings,
        state: ServingState,
        metrics: ServingMetrics,
    ) -> None:
        self.app = app
        self.settings = settings
        self.state = state
        self.metrics = metrics
        # Prediction requests between arrival and answer; health checks are never shed.
        self.in_flight = 0
        # None: no adaptive limit (WINEQ_ADMISSION_TARGET_MS=0), only max_concurrency.
        self.admission = (
            AdaptiveLimit(settings.admission_target_ms / 1000.0)
            if settings.admission_target_ms
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/") or "/"
        if scope["method"] == "POST" and path in (PREDICT_ROUTE, BATCH_ROUTE):
            await self._predict(scope, receive, send, path)
            return
        send = self._stamp_version(send)
        if path in (METRICS_ROUTE, HEALTH_ROUTE):
            if scope["method"] not in ("GET", "HEAD"):
                error = ApiError("method_not_allowed", "use GET", [("method", "must be GET")])
                await self._respond(send, error, [(b"allow", b"GET, HEAD")])
            elif path == METRICS_ROUTE:
                # BentoML's own metrics are off (bento/service.py), and with them its route.
                text = self.metrics.render().encode()
                await _send(send, 200, text, [(b"content-type", CONTENT_TYPE.encode())])
            else:
                await _send_json(send, 200, json.dumps(self.state.health()).encode(), [])
            return
        if scope["method"] == "GET" and path == DOCS_ROUTE:
            await self._send_document(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _predict(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """A prediction request: admitted, read, validated, then handed to BentoML's API."""
        units = work(_rows_guess(scope))
        if self.in_flight >= self.settings.max_concurrency:
            reason = f"at most {self.settings.max_concurrency} in progress"
        elif self.admission is not None and not self.admission.admit(units):
            reason = (
                f"as much work in progress as it answers within "
                f"{self.settings.admission_target_ms:g} ms"
            )
        else:
            reason = None
        if reason is not None:
            error = ApiError(
                "overloaded", "too much work in progress, retry shortly", [("service", reason)]
            )
            await self._respond(self._stamp_version(send), error)
            return
        self.in_flight += 1
        started = time.perf_counter()
        # Only an answer from the model says how long admitted work takes: a refusal
        # after parsing is quick whatever the load, and would hide a slow worker.
        latency: float | None = None
        try:
            try:
                body = await self._read_body(scope, receive)
                parsed = self._parse(path, body)
            except ApiError as exc:
                await self._respond(self._stamp_version(send), exc)
                return
            if self.admission is not None:
                self.admission.resize(units, work(len(parsed)))
            units = work(len(parsed))
            scope[ROWS_SCOPE_KEY] = parsed
            await self.app(scope, _replay(body, receive), self._shape_errors(send))
            latency = time.perf_counter() - started
        finally:
            self.in_flight -= 1
            if self.admission is not None:
                self.admission.release(units, latency)

    def _stamp_version(self, send: Send) -> Send:
        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                _set_version(message, self.state.model_version.encode())
            await send(message)

        return stamped

    async def _send_document(self, scope: Scope, receive: Receive, send: Send) -> None:
        """BentoML's API document, rewritten to say what the service really answers."""
        status = 500
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if status != 200:
            await self._respond(send, ApiError("internal_error", "the API document failed"))
            return
        document = truthful_document(
            json.loads(b"".join(chunks)),
            model_version=self.state.model_version,
            max_batch_rows=self.settings.max_batch_rows,
        )
        await _send_json(send, 200, json.dumps(document).encode(), [])

    def _shape_errors(self, send: Send) -> Send:
        """Replace BentoML's own error answers with the project's shape and statuses.

        Its load shedding and timeouts become 503 ``overloaded`` with ``Retry-After``;
        anything else it refuses after the guard accepted the request is a fault (500).
        Every answer gets the model-version header (one wrapper for both on this path).
        """
        replaced = False
        version = self.state.model_version.encode()

        async def shaped(message: Message) -> None:
            nonlocal replaced
            if message["type"] != "http.response.start":
                if not replaced:
                    await send(message)
                return
            if message["status"] >= 400:
                replaced = True
                if message["status"] in OVERLOAD_STATUSES:
                    error = ApiError("overloaded", "the service is overloaded, retry later")
                else:
                    error = ApiError(
                        "internal_error", "an unexpected error happened; it has been logged"
                    )
                kept = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k not in (b"content-length", b"content-type", b"retry-after")
                ]
                await self._respond(self._stamp_version(send), error, kept)
                return
            _set_version(message, version)
            await send(message)

        return shaped

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        headers = dict(scope.get("headers", []))
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type != b"application/json":
            raise ApiError(
                "unsupported_media_type",
                "send the request as JSON",
                [("content-type", "must be application/json")],
            )
        limit = self.settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise self._too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError("malformed_json", "the client went away", [("body", "incomplete")])
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _too_large(limit: int) -> ApiError:
        return ApiError(
            "payload_too_large",
            "the request body is too large",
            [("body", f"must be at most {limit} bytes")],
        )

    def _parse(self, path: str, body: bytes) -> list[Row]:
        try:
            payload = json.loads(body)
        except RecursionError:
            raise self._too_deep() from None
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError):
                reason = exc.msg
            elif isinstance(exc, UnicodeDecodeError):
                reason = "not UTF-8 text"
            else:  # e.g. an integer literal longer than Python converts
                reason = "a value could not be read as a number"
            raise ApiError(
                "malformed_json", "the body is not valid JSON", [("body", reason)]
            ) from None
        try:
            return self._rows(path, payload)
        except ApiError:
            # Whatever the schema accepts is nested at most 3 levels and max_json_depth is
            # at least 3, so the depth walk only has to decide between refusals (too deep
            # comes first): accepted requests never pay for it.
            if json_depth(payload) > self.settings.max_json_depth:
                raise self._too_deep() from None
            raise

    def _rows(self, path: str, payload: Any) -> list[Row]:
        if not self.state.ready:
            reason = "model failed to load" if self.state.failure else "model still loading"
            raise ApiError(
                "not_ready", "the service is not ready to predict", [("service", reason)]
            )
        if path == BATCH_ROUTE:
            return self._parse_batch(payload)
        try:
            request = PredictRequest.model_validate(payload)
        except ValidationError as exc:
            raise self._invalid(exc) from None
        return [to_row(request.features, request.request_id)]

    def _parse_batch(self, payload: Any) -> list[Row]:
        rows = payload.get("features_list") if isinstance(payload, dict) else None
        limit = self.settings.max_batch_rows
        if isinstance(rows, list) and len(rows) > limit:
            raise ApiError(
                "batch_too_large",
                "too many rows in one batch; split the request",
                [("features_list", f"must hold at most {limit} rows, got {len(rows)}")],
            )
        try:
            request = BatchPredictRequest.model_validate(payload)
        except ValidationError as exc:
            raise self._invalid(exc) from None
        return [to_row(features, request.request_id) for features in request.features_list]

    def _too_deep(self) -> ApiError:
        return ApiError(
            "too_deeply_nested",
            "the JSON body is nested too deeply",
            [("body", f"must be nested at most {self.settings.max_json_depth} levels")],
        )

    @staticmethod
    def _invalid(exc: ValidationError) -> ApiError:
        detail = field_errors(exc.errors(include_url=False, include_input=False))
        return ApiError("validation_error", f"{len(detail)} invalid field(s)", detail)

    @staticmethod
    async def _respond(
        send: Send, error: ApiError, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        extra = [(b"retry-after", b"1")] if error.status == 503 else []
        await _send_json(send, error.status, error.body(), [*(headers or []), *extra])


async def _send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """One whole JSON response: ``headers`` plus its content type and length."""
    await _send(send, status, body, [*headers, (b"content-type", b"application/json")])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """One whole response: ``headers`` (with its content type) plus its length."""
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _set_version(start: Message, version: bytes) -> None:
    """Give a response start message the model-version header (replacing one it had)."""
    headers = [(k, v) for k, v in start.get("headers", []) if k != MODEL_VERSION_HEADER]
    headers.append((MODEL_VERSION_HEADER, version))
    start["headers"] = headers


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the already-read body to the app once, then pass on the real channel."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
