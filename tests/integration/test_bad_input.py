"""Bad input gets a clear 4xx with per-field reasons through a real server, which stays healthy.

One case per refusal status and kind of check, end to end; every error path of the guard,
case by case, is covered in-process by tests/unit/test_guard.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bento.settings import ServiceSettings
from training.features import EXAMPLE_FEATURES

pytestmark = pytest.mark.integration

SETTINGS = ServiceSettings()
GOOD = dict(EXAMPLE_FEATURES)


def _features(**changes: Any) -> dict[str, Any]:
    features = {**GOOD, **changes}
    return {k: v for k, v in features.items() if v is not _DROP}


_DROP = object()


def _raw_with(field: str, literal: str) -> bytes:
    """A body whose `field` holds a JSON literal Python's json module would never write."""
    body = json.dumps({"features": _features(**{field: 123456.0})})
    return body.replace("123456.0", literal).encode()


JSON = "application/json"


def _case(
    case_id: str, path: str, body: Any, status: int, field: str, content_type: str = JSON
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return pytest.param(path, raw, content_type, status, field, id=case_id)


P, B = "/predict", "/predict/batch"
CASES = [
    _case("missing-field", P, {"features": _features(alcohol=_DROP)}, 422, "features.alcohol"),
    _case(
        "unknown-field-typo",
        P,
        {"features": {**_features(alcohol=_DROP), "alchohol": 9.4}},
        422,
        "features.alchohol",
    ),
    _case("nan-literal", P, _raw_with("alcohol", "NaN"), 422, "features.alcohol"),
    _case(
        "free-so2-above-total",
        P,
        {"features": _features(free_sulfur_dioxide=50.0, total_sulfur_dioxide=40.0)},
        422,
        "features.free_sulfur_dioxide",
    ),
    _case(
        "bad-row-in-batch",
        B,
        {"features_list": [GOOD, _features(alcohol=-1.0)]},
        422,
        "features_list.1.alcohol",
    ),
    _case(
        "batch-above-limit",
        B,
        {"features_list": [GOOD] * (SETTINGS.max_batch_rows + 1)},
        413,
        "features_list",
    ),
    _case(
        "body-above-limit",
        P,
        {"features": GOOD, "request_id": "x" * SETTINGS.max_body_bytes},
        413,
        "body",
    ),
    _case("malformed-json", P, b'{"features": {"alcohol": 9.4,', 400, "body"),
    _case("deeply-nested", P, b'{"features": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "body"),
    _case("wrong-content-type", P, {"features": GOOD}, 415, "content-type", "text/plain"),
]


@pytest.mark.parametrize(("path", "body", "content_type", "status", "field"), CASES)
def test_bad_input_is_refused_with_a_field_level_reason(
    service_url: str, path: str, body: bytes, content_type: str, status: int, field: str
) -> None:
    response = httpx.post(
        f"{service_url}{path}", content=body, headers={"content-type": content_type}, timeout=30
    )
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert set(error) == {"error", "message", "detail"}
    assert error["detail"], "no per-field reason given"
    assert field in [d["field"] for d in error["detail"]], error
    assert all(d["reason"] for d in error["detail"])
    text = response.text
    for leak in ("Traceback", 'File "', "Exception", "pydantic", "errors.pydantic.dev"):
        assert leak not in text
    # The refused request changed nothing: still ready, still right.
    assert httpx.get(f"{service_url}/readyz").status_code == 200
    good = httpx.post(f"{service_url}/predict", json={"features": GOOD})
    assert good.status_code == 200
    assert 3 <= good.json()["prediction"] <= 9
