"""BentoML IO specs that let the batchable APIs keep the clients' single-object body.

A BentoML batchable API takes one list argument.  These specs take that list from
the rows :class:`bento.guard.RequestGuard` has already validated (so the body is
parsed once), and turn the API's list of answers back into the response body:
one object for ``/predict``, an array for ``/predict/batch``.  Their pydantic
schemas are the public request/response models, so the OpenAPI document and the
web UI show the real shapes and examples.
"""

from __future__ import annotations

import json
from typing import Any

from bentoml import IODescriptor
from pydantic import ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from bento.bentoml_adapter import IORootModel, RootInput
from bento.guard import ROWS_SCOPE_KEY, Row
from bento.schemas import BatchPredictRequest, Prediction, PredictRequest


class _GuardedRows(RootInput):
    """Input side of both specs: the rows RequestGuard validated, as the API's one list."""

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> Any:
        """The validated rows the guard left in the ASGI scope."""
        rows: list[Row] = request.scope[ROWS_SCOPE_KEY]
        return rows


def _json(payload: Any) -> Response:
    return Response(
        json.dumps(payload, separators=(",", ":")).encode(), media_type="application/json"
    )


class PredictInputSpec(_GuardedRows, IODescriptor, PredictRequest):
    """One wine: its 11 measurements (and type) under `features`, and an optional request_id."""

    model_config = ConfigDict(title="PredictRequest")


class BatchInputSpec(_GuardedRows, IODescriptor, BatchPredictRequest):
    """Several wines under `features_list` (answered in the same order), and a request_id."""

    model_config = ConfigDict(title="BatchPredictRequest")


class PredictOutputSpec(IODescriptor, Prediction):
    """The predicted quality, its confidence, every class's probability and the model version."""

    model_config = ConfigDict(title="Prediction")

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        """The single answer of a one-row request."""
        return _json(obj[0])


class BatchOutputSpec(IORootModel[list[Prediction]]):
    """One prediction per wine, in request order."""

    model_config = ConfigDict(title="Predictions")

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        """All answers of a batch request, in order."""
        return _json(list(obj))
