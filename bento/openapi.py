"""The published API document (``/docs.json``, which the web UI at ``/`` renders), made true.

BentoML generates the document from the APIs' IO specs: its prediction routes list only
200/400/404/500 with BentoML's own error schema, and its description is BentoML's
generic README.  The request guard answers the routes itself in the project's error
shape, so :func:`truthful_document` rewrites what BentoML generated: every status each
route can return with :class:`~bento.schemas.ErrorResponse`, the ``Retry-After`` and
``X-Model-Version`` headers, the batch limit, ``GET /health``, and this service's own
description.  A client generated from the document is then right about every answer
(``tests/integration/test_openapi.py`` fuzzes the server against it).
"""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic import BaseModel

from bento.schemas import ErrorResponse, HealthResponse
from training.features import EXAMPLE_FEATURES

PREDICT_ROUTE: Final = "/predict"
BATCH_ROUTE: Final = "/predict/batch"
HEALTH_ROUTE: Final = "/health"
DOCS_ROUTE: Final = "/docs.json"
REF: Final = "#/components/schemas/{model}"
MODEL_VERSION_HEADER: Final = "X-Model-Version"

# Every status a prediction route answers besides 200, and why (see bento/errors.py).
REFUSALS: Final[dict[str, str]] = {
    "400": "The body is not valid JSON (or not UTF-8), or it is nested too deeply.",
    "413": "The body is larger than WINEQ_MAX_BODY_BYTES, or a batch holds more rows "
    "than WINEQ_MAX_BATCH_ROWS.",
    "415": "The body is not sent as application/json.",
    "422": "A field is missing, unknown, not a finite number, outside its physical limits, "
    "or free SO2 is above total SO2; `detail` names each field and why.",
    "500": "An unexpected fault; it has been logged. No internal detail is returned.",
    "503": "Not ready (model loading or failed) or overloaded; retry after Retry-After seconds.",
}


def _version_header() -> dict[str, Any]:
    return {
        "description": "Version of the model this worker serves.",
        "required": True,
        "schema": {"type": "string"},
    }


def _components(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    found: dict[str, Any] = schema.pop("$defs", {})
    found[model.__name__] = schema
    return found


def _schemas_in(node: Any) -> list[dict[str, Any]]:
    """Every object schema (a dict with ``properties``) anywhere in ``node``."""
    found: list[dict[str, Any]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("properties"), dict):
                found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def description(model_version: str) -> str:
    """What the web UI shows above the routes: this service, not BentoML's README."""
    example = json.dumps({"features": EXAMPLE_FEATURES, "request_id": "demo-1"})
    return f"""Predicts the **quality of a wine** (a score from 3 to 9, as wine tasters \
grade it) from 11 physico-chemical lab measurements of a red or white *vinho verde*, with
a random forest trained on the UCI Wine Quality data.

**Model version:** `{model_version}` (also in every answer's `{MODEL_VERSION_HEADER}` header).

| route | what it does |
|---|---|
| `POST {PREDICT_ROUTE}` | one wine: `{{"features": {{...}}, "request_id"?}}` → prediction, \
confidence, every class's probability, features outside the training data |
| `POST {BATCH_ROUTE}` | several wines: `{{"features_list": [...], "request_id"?}}` → one \
prediction per wine, in order |
| `GET {HEALTH_ROUTE}` | status for monitors (healthy / degraded / unhealthy), always 200 |
| `GET /readyz`, `/livez`, `/healthz` | readiness and liveness probes |
| `GET /metrics` | Prometheus metrics |

Example body for `{PREDICT_ROUTE}`:

```json
{example}
```

Every refusal has the same body: `{{"error", "message", "detail": [{{"field", "reason"}}]}}`.
How the model was evaluated (both protocols, per wine type, against the original paper) is
in `docs/model.md` of the project's repository.
"""


def _error_response(reason: str, status: str) -> dict[str, Any]:
    headers = {MODEL_VERSION_HEADER: _version_header()}
    if status == "503":
        headers["Retry-After"] = {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "integer"},
        }
    return {
        "description": reason,
        "headers": headers,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}},
    }


def truthful_document(
    document: dict[str, Any], *, model_version: str, max_batch_rows: int
) -> dict[str, Any]:
    """BentoML's generated document with the service's real answers, limits and description."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_components(ErrorResponse))
    schemas.update(_components(HealthResponse))
    info = document.setdefault("info", {})
    info.update(title="Wine quality", version=model_version, description=description(model_version))
    info.pop("contact", None)
    paths = document.setdefault("paths", {})
    for route in (PREDICT_ROUTE, BATCH_ROUTE):
        operation = paths[route]["post"]
        success = operation["responses"].get("200") or operation["responses"][200]
        success["headers"] = {MODEL_VERSION_HEADER: _version_header()}
        operation["responses"] = {
            "200": success,
            **{status: _error_response(reason, status) for status, reason in REFUSALS.items()},
        }
    batch_body = paths[BATCH_ROUTE]["post"]["requestBody"]["content"]["application/json"]
    batch_schema = batch_body["schema"]
    if "$ref" in batch_schema:
        batch_schema = schemas[batch_schema["$ref"].rsplit("/", 1)[1]]
    batch_schema["properties"]["features_list"]["maxItems"] = max_batch_rows
    for schema in _schemas_in(document):
        for prop in schema.get("properties", {}).values():
            # BentoML writes OpenAPI 3.0, where an optional `str | None` field must say it
            # accepts null (the service does, and answers request_id null).
            if "default" in prop and prop["default"] is None:
                prop["nullable"] = True
    paths[HEALTH_ROUTE] = {
        "get": {
            "tags": ["Infrastructure"],
            "description": "Status for the earlier service's monitors: always 200; not a "
            "readiness probe (use /readyz).",
            "responses": {
                "200": {
                    "description": "The worker's status.",
                    "headers": {MODEL_VERSION_HEADER: _version_header()},
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model="HealthResponse")}}
                    },
                }
            },
        }
    }
    return document
