"""What the benchmark variants share: request validation with the project's schemas."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from bento.guard import Row
from bento.schemas import PredictRequest
from training.features import WINE_TYPE_FIELD, encode_row


class InvalidRequestError(ValueError):
    """The body does not satisfy the project's PredictRequest schema."""


def validated_row(features: dict[str, Any], request_id: str | None) -> Row:
    """Validate one /predict body with bento.schemas and encode it for the model."""
    try:
        request = PredictRequest.model_validate({"features": features, "request_id": request_id})
    except ValidationError as exc:
        raise InvalidRequestError(f"{exc.error_count()} invalid field(s)") from None
    values = request.features.__dict__
    return Row(tuple(encode_row(values, values[WINE_TYPE_FIELD])), request.request_id)
