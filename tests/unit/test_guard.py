"""The request guard in-process: every refusal, the reshaping of the app's own errors, and
what reaches the app, driven through plain ASGI calls with a stub app behind the guard.

tests/integration/test_bad_input.py and test_overload.py keep the end-to-end contract
through a real `bentoml serve`; here each error path is reached directly and quickly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from bento.guard import ROWS_SCOPE_KEY, RequestGuard, Row
from bento.metrics import ServingMetrics
from bento.settings import ServiceSettings
from bento.state import ServingState
from training.features import EXAMPLE_FEATURES, FEATURES, encode_row

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

VERSION = "20250101-abcdef"
JSON = "application/json"
GOOD: dict[str, Any] = dict(EXAMPLE_FEATURES)
PH_MAX = next(f.hard_max for f in FEATURES if f.name == "ph")
# Whatever a client must never read back: internals of the stub app or of the state.
SECRET = "/srv/secret/internals.py"
STUB_ANSWER = b'{"prediction": 5}'
WAIT_S = 5.0


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


def _features(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def _without(name: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != name}


@dataclass
class Received:
    """What one call of the stub app saw."""

    scope: Scope
    body: bytes
    body_messages: int
    # What a further receive() gave once the body was read: the client's own channel.
    after_body: Message


@dataclass
class StubApp:
    """Stands where BentoML's app stands: records each call and answers as the test says."""

    status: int = 200
    chunks: Sequence[bytes] = (STUB_ANSWER,)
    headers: Headers = field(default_factory=lambda: [(b"content-type", b"application/json")])
    # While set, prediction calls wait on it (after signalling `entered`).
    hold: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[Received] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            self.received.append(Received(scope, b"", 0, {}))
            return
        chunks, count = [], 0
        while True:
            message = await receive()
            count += 1
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        after = await receive()
        self.received.append(Received(scope, b"".join(chunks), count, after))
        if self.hold is not None and scope["path"].startswith("/predict"):
            self.entered.set()
            await self.hold.wait()
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        for i, chunk in enumerate(self.chunks):
            more = i < len(self.chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})


@dataclass
class Channel:
    """The client side of one request: hands out its messages, then reports a disconnect."""

    messages: list[Message]
    reads: int = 0

    async def receive(self) -> Message:
        self.reads += 1
        if self.messages:
            return self.messages.pop(0)
        return {"type": "http.disconnect"}


@dataclass
class Response:
    """What the client got back."""

    status: int
    headers: Headers
    body: bytes
    channel: Channel

    def header(self, name: str) -> str | None:
        """The single value of header ``name`` (None when absent)."""
        values = [v.decode() for k, v in self.headers if k.decode().lower() == name]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    @property
    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def make_guard(
    app: StubApp | None = None, state: ServingState | None = None, **settings: Any
) -> RequestGuard:
    """A guard in front of ``app`` with a ready state unless told otherwise."""
    return RequestGuard(
        app or StubApp(),
        settings=ServiceSettings(**settings),
        state=state or ServingState(model_version=VERSION, ready=True),
        metrics=ServingMetrics(),
    )


async def send_request(
    guard: RequestGuard,
    path: str = "/predict",
    body: bytes = b"",
    *,
    method: str = "POST",
    content_type: str | None = JSON,
    content_length: str | None = "auto",
    messages: list[Message] | None = None,
) -> Response:
    """One HTTP request through ``guard``; ``messages`` replaces the one-piece body."""
    headers: Headers = []
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    if content_length == "auto":
        content_length = str(len(body)) if messages is None else None
    if content_length is not None:
        headers.append((b"content-length", content_length.encode()))
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 3000),
    }
    channel = Channel(
        messages if messages is not None else [{"type": "http.request", "body": body}]
    )
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(guard(scope, channel.receive, send), WAIT_S)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    assert sent[0] is starts[0], "body sent before the response start"
    parts = sent[1:]
    assert all(m["type"] == "http.response.body" for m in parts)
    assert parts, "no body message"
    assert not parts[-1].get("more_body", False), "response never finished"
    assert all(m.get("more_body", False) for m in parts[:-1]), "a message after the last one"
    body_out = b"".join(m.get("body", b"") for m in parts)
    return Response(starts[0]["status"], list(starts[0].get("headers", [])), body_out, channel)


def call(guard: RequestGuard, path: str = "/predict", body: bytes = b"", **kw: Any) -> Response:
    """``send_request`` from synchronous test code."""
    return asyncio.run(send_request(guard, path, body, **kw))


def assert_refused(
    response: Response, status: int, error: str, detail: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """The project's error body with ``status``/``error``; ``detail`` exactly, when given."""
    assert response.status == status, response.body[:300]
    assert response.header("content-type") == JSON
    assert response.header("content-length") == str(len(response.body))
    assert response.header("x-model-version") == VERSION
    payload: dict[str, Any] = response.json
    assert set(payload) == {"error", "message", "detail"}
    assert payload["error"] == error
    assert payload["message"]
    pairs = [(d["field"], d["reason"]) for d in payload["detail"]]
    assert all(f and r for f, r in pairs), pairs
    if detail is not None:
        assert pairs == detail
    if status == 503:
        assert response.header("retry-after") == "1"
    for leak in ("Traceback", "pydantic", "errors.pydantic.dev", SECRET):
        assert leak not in response.body.decode(errors="replace")
    return payload


# --- 415 -------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_a_body_that_is_not_json_by_type_gets_415(path: str, content_type: str | None) -> None:
    app = StubApp()
    response = call(make_guard(app), path, _body({"features": GOOD}), content_type=content_type)
    assert_refused(
        response, 415, "unsupported_media_type", [("content-type", "must be application/json")]
    )
    assert app.received == []
    assert response.channel.reads == 0, "the body was read although its type was wrong"


def test_json_content_type_with_parameters_and_capitals_is_accepted() -> None:
    app = StubApp()
    body = _body({"features": GOOD})
    response = call(
        make_guard(app), "/predict", body, content_type="Application/JSON; charset=utf-8"
    )
    assert response.status == 200
    assert app.received[0].body == body


# --- 413 -------------------------------------------------------------------------------

LIMIT = 1024
TOO_LARGE = [("body", f"must be at most {LIMIT} bytes")]


def test_a_declared_length_above_the_limit_is_refused_before_reading_the_body() -> None:
    app = StubApp()
    guard = make_guard(app, max_body_bytes=LIMIT)
    response = call(guard, "/predict", b"{}", content_length=str(LIMIT + 1))
    assert_refused(response, 413, "payload_too_large", TOO_LARGE)
    assert response.channel.reads == 0
    assert app.received == []


@pytest.mark.parametrize("declared", [None, "10"], ids=["no-length", "understated-length"])
def test_a_streamed_body_above_the_limit_is_cut_off_as_soon_as_it_passes_it(
    declared: str | None,
) -> None:
    app = StubApp()
    chunk = b" " * 400
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(10)]
    response = call(
        make_guard(app, max_body_bytes=LIMIT),
        "/predict",
        messages=messages,
        content_length=declared,
    )
    assert_refused(response, 413, "payload_too_large", TOO_LARGE)
    assert response.channel.reads == 3, "the guard read past the limit"
    assert app.received == []


def test_a_body_exactly_at_the_limit_is_read() -> None:
    app = StubApp()
    body = _body({"features": GOOD})
    padded = body + b" " * (LIMIT - len(body))
    response = call(make_guard(app, max_body_bytes=LIMIT), "/predict", padded)
    assert response.status == 200
    assert app.received[0].body == padded


def test_a_batch_above_max_batch_rows_gets_413_naming_the_limit_and_the_count() -> None:
    app = StubApp()
    guard = make_guard(app, max_batch_rows=2)
    response = call(guard, "/predict/batch", _body({"features_list": [GOOD] * 3}))
    assert_refused(
        response, 413, "batch_too_large", [("features_list", "must hold at most 2 rows, got 3")]
    )
    assert app.received == []
    assert call(guard, "/predict/batch", _body({"features_list": [GOOD] * 2})).status == 200


# --- 400 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b'{"features": {"alcohol": 9.4,', None, id="truncated"),
        pytest.param(b"", None, id="empty"),
        pytest.param(b'{"features": {"wine_type": "r\xe9d"}}', "not UTF-8 text", id="latin-1"),
        pytest.param(
            b'{"features": {"alcohol": ' + b"9" * 5000 + b"}}",
            "a value could not be read as a number",
            id="endless-integer",
        ),
    ],
)
def test_a_body_that_is_not_json_gets_400(body: bytes, reason: str | None) -> None:
    app = StubApp()
    response = call(make_guard(app), "/predict", body)
    payload = assert_refused(response, 400, "malformed_json")
    assert payload["message"] == "the body is not valid JSON"
    [detail] = payload["detail"]
    assert detail["field"] == "body"
    if reason is not None:
        assert detail["reason"] == reason
    assert app.received == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_body({"features": _features(alcohol=[[[[[[[[9.4]]]]]]]])}), id="nine-levels"),
        pytest.param(b'{"features": ' + b"[" * 5000 + b"]" * 5000 + b"}", id="beyond-recursion"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="bare-array"),
    ],
)
def test_json_nested_deeper_than_the_limit_gets_400(body: bytes) -> None:
    app = StubApp()
    response = call(make_guard(app), "/predict", body)
    assert_refused(
        response, 400, "too_deeply_nested", [("body", "must be nested at most 8 levels")]
    )
    assert app.received == []


def test_nesting_within_the_limit_is_judged_by_the_schema_not_refused_as_too_deep() -> None:
    body = _body({"features": _features(alcohol=[[[[[9.4]]]]])})  # 7 levels, limit 8
    response = call(make_guard(), "/predict", body)
    assert_refused(response, 422, "validation_error")


# --- 422 -------------------------------------------------------------------------------


def _raw(field_name: str, literal: str) -> bytes:
    """A body whose ``field_name`` holds a JSON literal Python's json module never writes."""
    return _body({"features": _features(**{field_name: 123456.0})}).replace(
        b"123456.0", literal.encode()
    )


@pytest.mark.parametrize(
    ("path", "body", "field_name", "reason"),
    [
        pytest.param(
            "/predict",
            _body({"features": _without("alcohol")}),
            "features.alcohol",
            "required field is missing",
            id="missing",
        ),
        pytest.param(
            "/predict",
            _body({"features": {**GOOD, "alchohol": 9.4}}),
            "features.alchohol",
            "unknown field (check the spelling against the API schema)",
            id="unknown-field",
        ),
        pytest.param(
            "/predict",
            _body({"features": GOOD, "requestid": SECRET}),
            "requestid",
            "unknown field (check the spelling against the API schema)",
            id="unknown-top-level-field",
        ),
        pytest.param("/predict", _raw("alcohol", "NaN"), "features.alcohol", None, id="nan"),
        pytest.param(
            "/predict", _raw("sulphates", "-Infinity"), "features.sulphates", None, id="infinity"
        ),
        pytest.param(
            "/predict",
            _body({"features": _features(alcohol=SECRET)}),
            "features.alcohol",
            None,
            id="string-not-number",
        ),
        pytest.param(
            "/predict",
            _body({"features": _features(ph=PH_MAX + 1)}),
            "features.ph",
            None,
            id="ph-out-of-range",
        ),
        pytest.param(
            "/predict",
            _body({"features": _features(free_sulfur_dioxide=50.0, total_sulfur_dioxide=40.0)}),
            "features.free_sulfur_dioxide",
            "must not exceed total_sulfur_dioxide",
            id="free-so2-above-total",
        ),
        pytest.param(
            "/predict",
            _body({"features": _features(wine_type="rose")}),
            "features.wine_type",
            None,
            id="unknown-wine-type",
        ),
        pytest.param(
            "/predict", _body({"features": [7.4, 0.7]}), "features", None, id="features-a-list"
        ),
        pytest.param("/predict", _body([GOOD]), "body", None, id="top-level-array"),
        pytest.param(
            "/predict",
            _body({"features": GOOD, "request_id": "r" * 500}),
            "request_id",
            None,
            id="request-id-too-long",
        ),
        pytest.param(
            "/predict/batch",
            _body({"features_list": [GOOD, _features(chlorides=-0.1)]}),
            "features_list.1.chlorides",
            None,
            id="bad-row-in-batch",
        ),
        pytest.param(
            "/predict/batch",
            _body({"features_list": []}),
            "features_list",
            None,
            id="empty-batch",
        ),
    ],
)
def test_invalid_fields_get_422_with_one_reason_per_field(
    path: str, body: bytes, field_name: str, reason: str | None
) -> None:
    app = StubApp()
    response = call(make_guard(app), path, body)
    payload = assert_refused(response, 422, "validation_error")
    assert payload["message"] == "1 invalid field(s)"
    [detail] = payload["detail"]
    assert detail["field"] == field_name
    if reason is not None:
        assert detail["reason"] == reason
    assert app.received == []


def test_an_out_of_range_reason_states_the_physical_limit() -> None:
    response = call(make_guard(), "/predict", _body({"features": _features(ph=PH_MAX + 1)}))
    [detail] = assert_refused(response, 422, "validation_error")["detail"]
    assert f"{PH_MAX:g}" in detail["reason"]


def test_every_invalid_field_is_listed_at_once() -> None:
    body = _body({"features": {**_without("alcohol"), "ph": PH_MAX + 1, "colour": "red"}})
    payload = assert_refused(call(make_guard(), "/predict", body), 422, "validation_error")
    assert payload["message"] == "3 invalid field(s)"
    assert sorted(d["field"] for d in payload["detail"]) == [
        "features.alcohol",
        "features.colour",
        "features.ph",
    ]


# --- 503 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "reason"),
    [(None, "model still loading"), (f"OSError: {SECRET} unreadable", "model failed to load")],
)
def test_predictions_before_the_model_is_ready_get_503_with_retry_after(
    failure: str | None, reason: str
) -> None:
    app = StubApp()
    state = ServingState(model_version=VERSION, ready=False, failure=failure)
    response = call(make_guard(app, state), "/predict", _body({"features": GOOD}))
    assert_refused(response, 503, "not_ready", [("service", reason)])
    assert app.received == []


def test_a_draining_worker_still_answers_predictions() -> None:
    app = StubApp()
    state = ServingState(model_version=VERSION, ready=True, draining=True)
    assert call(make_guard(app, state), "/predict", _body({"features": GOOD})).status == 200
    assert len(app.received) == 1


def test_requests_above_max_concurrency_get_503_while_health_checks_pass() -> None:
    async def scenario() -> tuple[Response, Response, Response, Response]:
        release = asyncio.Event()
        app = StubApp(hold=release)
        guard = make_guard(app, max_concurrency=1)
        body = _body({"features": GOOD})
        first = asyncio.create_task(send_request(guard, "/predict", body))
        await asyncio.wait_for(app.entered.wait(), WAIT_S)
        refused = await send_request(guard, "/predict/batch", _body({"features_list": [GOOD]}))
        health = await send_request(guard, "/readyz", method="GET", content_type=None)
        release.set()
        served = await first
        after = await send_request(guard, "/predict", body)
        return refused, health, served, after

    refused, health, served, after = asyncio.run(scenario())
    assert_refused(refused, 503, "overloaded", [("service", "at most 1 in progress")])
    assert refused.channel.reads == 0, "an overloaded guard still read the body"
    assert health.status == 200
    assert served.status == 200
    assert after.status == 200, "the finished request did not give its slot back"


@pytest.mark.parametrize(
    "refused_body",
    [b"{", _body({"features": _without("ph")}), _body({"features_list": [GOOD] * 300})],
    ids=["400", "422", "413"],
)
def test_a_refused_request_gives_its_slot_back(refused_body: bytes) -> None:
    guard = make_guard(max_concurrency=1)
    path = "/predict/batch" if b"features_list" in refused_body else "/predict"
    assert call(guard, path, refused_body).status >= 400
    assert call(guard, "/predict", _body({"features": GOOD})).status == 200


# --- the app's own errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "answered", "chunks", "error"),
    [
        pytest.param(
            429, 503, [_body({"error": f"queue full at {SECRET}"})], "overloaded", id="bentoml-429"
        ),
        pytest.param(
            503,
            503,
            [_body({"error": f"ServiceUnavailable: {SECRET}"})],
            "overloaded",
            id="bentoml-503",
        ),
        pytest.param(
            504,
            503,
            [_body({"error": f"timed out after {SECRET}"})],
            "overloaded",
            id="timeout-504",
        ),
        pytest.param(
            400,
            500,
            [_body({"error": f"BadInput: {SECRET}"})],
            "internal_error",
            id="bentoml-400-after-the-guard-accepted",
        ),
        pytest.param(
            500,
            500,
            [_body({"error": "An unexpected error has occurred, please check the server log."})],
            "internal_error",
            id="bentoml-500",
        ),
        pytest.param(
            500,
            500,
            [b"Traceback (most recent call last):\n", f'  File "{SECRET}"\n'.encode()],
            "internal_error",
            id="streamed-text-500",
        ),
    ],
)
def test_the_apps_own_errors_are_reshaped_to_the_documented_statuses(
    status: int, answered: int, chunks: list[bytes], error: str
) -> None:
    # Load shedding and timeouts are "retry later" (503 with Retry-After); anything else
    # BentoML refuses after the guard accepted the request is a fault (500).
    app = StubApp(
        status=status,
        chunks=chunks,
        headers=[(b"content-type", b"text/plain"), (b"x-request-id", b"abc")],
    )
    response = call(make_guard(app), "/predict", _body({"features": GOOD}))
    assert response.status == answered
    assert (response.header("retry-after") == "1") is (answered == 503)
    assert response.header("content-type") == JSON
    assert response.header("content-length") == str(len(response.body))
    assert response.header("x-model-version") == VERSION
    assert response.header("x-request-id") == "abc", "the app's other headers were dropped"
    payload = response.json
    assert payload["error"] == error
    assert payload["detail"] == []
    assert payload["message"]
    text = response.body.decode()
    assert all(chunk.decode() not in text for chunk in chunks)
    assert SECRET not in text
    assert "unexpected error has occurred" not in text


def test_a_successful_answer_passes_through_unchanged() -> None:
    chunks = [b'[{"prediction": 5},', b'{"prediction": 6}]']
    headers = [(b"content-type", b"application/json"), (b"x-model-version", b"stale")]
    app = StubApp(chunks=chunks, headers=headers)
    body = _body({"features_list": [GOOD, GOOD]})
    response = call(make_guard(app), "/predict/batch", body)
    assert response.status == 200
    assert response.body == b"".join(chunks)
    assert response.header("content-type") == JSON
    assert response.header("x-model-version") == VERSION, "the app's own header survived"


# --- what reaches the app --------------------------------------------------------------


def test_the_app_gets_the_body_once_and_the_validated_rows_in_the_scope() -> None:
    app = StubApp()
    body = _body({"features": GOOD, "request_id": "demo-1"})
    assert call(make_guard(app), "/predict", body).status == 200
    [received] = app.received
    assert received.body == body
    assert received.body_messages == 1
    assert received.after_body == {"type": "http.disconnect"}, "the body was replayed twice"
    assert received.scope[ROWS_SCOPE_KEY] == [Row(tuple(encode_row(GOOD)), "demo-1")]


def test_a_batch_reaches_the_app_as_rows_in_order_each_with_its_own_wine_type() -> None:
    app = StubApp()
    white = _features(wine_type="white", alcohol=12.5)
    no_type = _without("wine_type")
    chunks = [_body({"features_list": [GOOD, white, no_type]})]
    # Sent in three pieces: the app still gets it whole, in one message.
    cut = [chunks[0][:10], chunks[0][10:40], chunks[0][40:]]
    messages = [
        {"type": "http.request", "body": part, "more_body": i < 2} for i, part in enumerate(cut)
    ]
    assert call(make_guard(app), "/predict/batch", messages=messages).status == 200
    [received] = app.received
    assert received.body == chunks[0]
    assert received.body_messages == 1
    rows = received.scope[ROWS_SCOPE_KEY]
    assert rows == [
        Row(tuple(encode_row(GOOD)), None),
        Row(tuple(encode_row(white)), None),
        Row(tuple(encode_row({**no_type, "wine_type": "red"})), None),
    ]


def test_metrics_are_answered_from_what_the_worker_counted() -> None:
    metrics = ServingMetrics()
    metrics.answered("/predict", 200, 0.004)
    app = StubApp()
    guard = RequestGuard(
        app,
        settings=ServiceSettings(),
        state=ServingState(model_version=VERSION, ready=True),
        metrics=metrics,
    )
    response = call(guard, "/metrics", b"", method="GET", content_type=None)
    assert response.status == 200
    assert response.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
    assert response.header("x-model-version") == VERSION
    assert 'wineq_requests_total{route="/predict",status="200"} 1.0' in response.body.decode()
    assert app.received == [], "BentoML's own /metrics is off; the guard answers it"
    refused = call(guard, "/metrics", b"", method="POST", content_type=None)
    assert refused.status == 405
    assert refused.header("allow") == "GET, HEAD"


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("GET", "/predict", None),
        ("GET", "/readyz", None),
        ("POST", "/healthz", "text/plain"),
        ("POST", "/predictions", "text/plain"),
    ],
)
def test_other_routes_and_methods_pass_straight_through_with_the_version(
    method: str, path: str, content_type: str | None
) -> None:
    # Even an error from the app is left as it is off the prediction routes.
    answer = b'{"detail": "Method Not Allowed"}'
    app = StubApp(status=405, chunks=[answer])
    body = b"not json at all" if method == "POST" else b""
    guard = make_guard(app, state=ServingState(model_version=VERSION, ready=False))
    response = call(guard, path, body, method=method, content_type=content_type)
    assert response.status == 405
    assert response.body == answer
    assert response.header("x-model-version") == VERSION
    [received] = app.received
    assert received.body == body
    assert ROWS_SCOPE_KEY not in received.scope


def test_a_trailing_slash_is_still_a_prediction_route() -> None:
    app = StubApp()
    response = call(make_guard(app), "/predict/", b"x", content_type="text/plain")
    assert_refused(response, 415, "unsupported_media_type")
    assert app.received == []


def test_non_http_scopes_go_to_the_app_untouched() -> None:
    app = StubApp()
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}}

    async def never_called() -> Message:
        raise AssertionError("the guard read from a lifespan channel")

    async def no_send(message: Message) -> None:
        raise AssertionError(f"the guard sent {message}")

    asyncio.run(make_guard(app)(scope, never_called, no_send))
    assert [r.scope for r in app.received] == [scope]


def test_the_version_header_follows_the_state_it_was_given() -> None:
    state = ServingState(model_version="unknown", ready=False)
    guard = make_guard(state=state)
    body = _body({"features": GOOD})
    loading = call(guard, "/predict", body)
    assert loading.header("x-model-version") == "unknown"
    state.model_version, state.ready = VERSION, True
    loaded = call(guard, "/predict", body)
    assert loaded.status == 200
    assert loaded.header("x-model-version") == VERSION


# --- the client going away -------------------------------------------------------------


def test_a_client_that_disconnects_mid_body_never_reaches_the_app() -> None:
    app = StubApp()
    guard = make_guard(app, max_concurrency=1)
    half = _body({"features": GOOD})[:20]
    messages = [
        {"type": "http.request", "body": half, "more_body": True},
        {"type": "http.disconnect"},
    ]
    response = call(guard, "/predict", messages=messages)
    assert_refused(response, 400, "malformed_json", [("body", "incomplete")])
    assert app.received == []
    assert call(guard, "/predict", _body({"features": GOOD})).status == 200
